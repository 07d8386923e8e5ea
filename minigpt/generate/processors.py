"""Logits processors: how the next-token distribution is shaped before a token is picked.

One implementation serves both faces: each function works on NumPy arrays (the reference)
and on JAX arrays (inside ``jit``), choosing the array module from its input. Order of
application, as in Hugging Face ``generate``: bans → repetition penalty → temperature →
top-k → top-p → pick (argmax for greedy, a categorical draw otherwise).

Filtered-out tokens get logit −∞, i.e. probability exactly 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _xp(x: Any):
    """The array module of ``x``: NumPy for NumPy arrays, jax.numpy otherwise (tracers, jax.Array)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np
    import jax.numpy as jnp  # JAX: deferred so that this module imports without it

    return jnp


def check_sampling(
    temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, repetition_penalty: float = 1.0
) -> None:
    """Raise ``ValueError`` naming the bad setting and its valid range."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number ≥ 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None (no top-k), got {top_k!r}")
    if not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p!r}")
    penalty = repetition_penalty
    if not (isinstance(penalty, (int, float)) and math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = off), got {repetition_penalty!r}")


def apply_bans(logits, banned):
    """logit_v ← −∞ where ``banned[..., v]`` is True."""
    xp = _xp(logits)
    return xp.where(banned, -xp.inf, logits)


def apply_repetition_penalty(logits, seen, penalty: float):
    """CTRL's penalty (Keskar et al. 2019), as in Hugging Face: for every token already in the context,
    logit ← logit / θ if logit > 0 else logit · θ, so θ > 1 makes repeats less likely either way."""
    xp = _xp(logits)
    penalised = xp.where(logits > 0, logits / penalty, logits * penalty)
    return xp.where(seen, penalised, logits)


def apply_temperature(logits, temperature: float):
    """softmax(z / τ): τ < 1 sharpens, τ > 1 flattens. τ must be > 0 here (τ = 0 is greedy, handled by the caller)."""
    return logits / temperature


def top_k_filter(logits, k: int | None):
    """Keep the k largest logits per row, −∞ elsewhere.

    Ties at the k-th largest value are all kept (so a row may keep more than k tokens), so the
    result does not depend on an arbitrary tie order. k ≥ V or None keeps everything.
    """
    xp = _xp(logits)
    V = logits.shape[-1]
    if k is None or k >= V:
        return logits
    kth = xp.sort(logits, axis=-1)[..., V - k : V - k + 1]  # (..., 1) the k-th largest
    return xp.where(logits < kth, -xp.inf, logits)


def top_p_filter(logits, p: float):
    """Nucleus filtering (Holtzman et al. 2019): keep the smallest set of most probable tokens whose
    probability mass is ≥ p, −∞ elsewhere.

    With probabilities sorted descending π₁ ≥ π₂ ≥ …, token i is kept while the mass before it,
    Σ_{j<i} π_j, is < p; the most probable token is always kept. Tokens tied with the least probable
    kept one are kept too. p = 1 keeps everything (no filtering, even of tiny probabilities).
    """
    xp = _xp(logits)
    if p >= 1.0:
        return logits
    z = logits - xp.max(logits, axis=-1, keepdims=True)
    probs = xp.exp(z) / xp.sum(xp.exp(z), axis=-1, keepdims=True)  # (..., V)
    sorted_probs = -xp.sort(-probs, axis=-1)  # (..., V) descending
    mass_before = xp.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < p
    threshold = xp.min(xp.where(keep_sorted, sorted_probs, xp.inf), axis=-1, keepdims=True)  # (..., 1)
    return xp.where(probs < threshold, -xp.inf, logits)


def process_logits(
    logits,
    *,
    seen=None,
    banned=None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
):
    """All processors in order (bans, penalty, temperature, top-k, top-p); τ = 0 skips the sampling filters."""
    if banned is not None:
        logits = apply_bans(logits, banned)
    if seen is not None and repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, seen, repetition_penalty)
    if temperature == 0:
        return logits
    logits = apply_temperature(logits, temperature)
    return top_p_filter(top_k_filter(logits, top_k), top_p)


def sample_numpy(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one token per row from softmax(logits) (B, V) by inverting the CDF with u ~ U[0, 1).

    Zero-probability tokens (logit −∞) can never be drawn: the first index whose cumulative mass
    exceeds u · total always has positive probability.
    """
    z = logits - np.max(logits, axis=-1, keepdims=True)
    probs = np.exp(z)  # (B, V) unnormalised
    cdf = np.cumsum(probs, axis=-1)  # (B, V)
    u = rng.random((logits.shape[0], 1)).astype(cdf.dtype) * cdf[:, -1:]
    return np.argmax(cdf > u, axis=-1).astype(np.int64)
