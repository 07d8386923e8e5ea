"""AdamW and global-norm gradient clipping in NumPy, on parameter dicts of the ``minigpt.params`` layout.

One training step, in order (the same as ``optax.chain(optax.clip_by_global_norm(c), optax.adamw(...))``):

    ‖g‖ = √(Σ_tensors Σ g²);   g ← g · c/‖g‖  if ‖g‖ ≥ c            (clip_by_global_norm)
    m ← β₁ m + (1 − β₁) g;     v ← β₂ v + (1 − β₂) g²               (moment estimates)
    m̂ = m / (1 − β₁ᵗ);         v̂ = v / (1 − β₂ᵗ)                    (bias correction, t = 1, 2, ...)
    θ ← θ − η (m̂ / (√v̂ + ε) + λ·mask·θ)                            (decoupled weight decay)

Weight decay λ applies only where ``minigpt.params.weight_decay_mask`` is True — the Linear matrices;
biases, LayerNorm gains and the embeddings (wte is also the tied lm head) are not decayed (GPT-2 practice).
Decoupled (Loshchilov & Hutter): the decay is added to the Adam step, not to the gradient, so it is not
rescaled by 1/√v̂.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, unflatten_params, validate_params, weight_decay_mask
from minigpt.reference.model_backward import validate_grads


def global_norm(grads: Params) -> float:
    """‖g‖ = √(Σ over every tensor and entry of g²), accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in flatten_params(grads).values()))


def clip_by_global_norm(grads: Params, max_norm: float) -> tuple[Params, float]:
    """g ← g / ‖g‖ · max_norm when ‖g‖ ≥ max_norm, else g unchanged (as ``optax.clip_by_global_norm``).

    Scaling every tensor by one factor keeps the update's direction. Returns (clipped grads, ‖g‖ before).
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    norm = global_norm(grads)
    if norm < max_norm:
        return grads, norm
    return unflatten_params({k: g / norm * max_norm for k, g in flatten_params(grads).items()}), norm


@dataclass
class AdamWState:
    """Step count t (updates done so far) and the first/second moment estimates m, v (params layout)."""

    step: int
    m: Params
    v: Params


class AdamW:
    """AdamW with optional global-norm clipping, for one model config.

    >>> opt = AdamW(cfg, lr=3e-3)
    >>> state = opt.init(params)
    >>> params, state, grad_norm = opt.update(params, grads, state)
    """

    def __init__(
        self,
        cfg: GPTConfig,
        *,
        lr: float = 1e-3,
        b1: float = 0.9,
        b2: float = 0.95,
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        max_grad_norm: float | None = 1.0,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        for name, beta in (("b1", b1), ("b2", b2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be ≥ 0, got {weight_decay!r}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive or None (no clipping), got {max_grad_norm!r}")
        self.cfg = cfg
        self.lr, self.b1, self.b2, self.eps = float(lr), float(b1), float(b2), float(eps)
        self.weight_decay = float(weight_decay)
        self.max_grad_norm = max_grad_norm

    def init(self, params: Params) -> AdamWState:
        """t = 0, m = v = 0 (in the parameters' dtypes)."""
        validate_params(params, self.cfg)
        zeros = {k: np.zeros_like(p) for k, p in flatten_params(params).items()}
        return AdamWState(step=0, m=unflatten_params(zeros), v=unflatten_params(dict(zeros)))

    def update(self, params: Params, grads: Params, state: AdamWState) -> tuple[Params, AdamWState, float]:
        """One step: clip, update the moments, apply the bias-corrected Adam step plus masked decay.

        Returns (new params, new state, global gradient norm before clipping). Inputs are not modified.
        """
        validate_params(params, self.cfg)
        validate_grads(grads, self.cfg)
        if self.max_grad_norm is None:
            norm = global_norm(grads)
        else:
            grads, norm = clip_by_global_norm(grads, self.max_grad_norm)
        t = state.step + 1
        b1, b2, lr, wd = self.b1, self.b2, self.lr, self.weight_decay
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t  # bias corrections: m̂ = m/c1 is unbiased while m starts at 0
        decay = flatten_params(weight_decay_mask(params))
        g_flat, m_flat, v_flat = flatten_params(grads), flatten_params(state.m), flatten_params(state.v)
        new_p, new_m, new_v = {}, {}, {}
        for name, p in flatten_params(params).items():
            g = g_flat[name]
            m = b1 * m_flat[name] + (1.0 - b1) * g
            v = b2 * v_flat[name] + (1.0 - b2) * g * g
            step = (m / c1) / (np.sqrt(v / c2) + self.eps)
            if decay[name] and wd:
                step = step + wd * p
            # Grads of another float dtype must not silently change the parameters' dtype.
            new_p[name] = (p - lr * step).astype(p.dtype, copy=False)
            new_m[name], new_v[name] = m.astype(p.dtype, copy=False), v.astype(p.dtype, copy=False)
        return unflatten_params(new_p), AdamWState(t, unflatten_params(new_m), unflatten_params(new_v)), norm
