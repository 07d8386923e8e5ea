"""Checkers for lesson 12 (looking inside): the logit lens, logit attribution and patching one position, against
``minigpt.interpret``. Same contract as ``minigpt.testing.checkers``: a wrong function raises an AssertionError
that names the mistake (the lens without the final norm, shares that do not sum to the logit, the wrong position
patched) and shows the smallest input on which it fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.interpret.attribution import frozen_norm
from minigpt.reference import functional as F
from minigpt.testing.checks.diagnosis import call, compare, describe, generator, run
from minigpt.testing.context import current


@st.composite
def _final_norm(draw, C: int) -> dict[str, np.ndarray]:
    """LayerNorm gains around 1 and biases around 0, random so that forgetting either shows."""
    rng = generator(draw)
    return {"weight": 1.0 + 0.5 * rng.standard_normal(C), "bias": 0.5 * rng.standard_normal(C)}


def _streams(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Residual-stream-like vectors: each with its own offset and spread, so centring and scaling both matter."""
    offset = rng.standard_normal((*shape[:-1], 1)) * 2
    spread = np.exp(rng.standard_normal((*shape[:-1], 1)))
    return offset + spread * rng.standard_normal(shape)


def check_logit_lens(fn: Callable[..., np.ndarray], max_examples: int = 25) -> None:
    """``fn(streams, ln_f, w_u, eps)``: streams (N, T, C) → (N, T, V), each stream read as LN_f(h) · W_U
    with the final LayerNorm's γ = ln_f["weight"], β = ln_f["bias"] and ε = eps."""

    @st.composite
    def inputs(draw):
        N, T, C, V = (draw(st.integers(lo, hi)) for lo, hi in ((1, 4), (1, 5), (2, 8), (2, 9)))
        rng = generator(draw)
        return _streams(rng, (N, T, C)), draw(_final_norm(C)), rng.standard_normal((C, V)), 1e-5

    def lens(x, ln, w_u, eps):
        return F.layer_norm(x, ln["weight"], ln["bias"], eps) @ w_u

    def prop(example):
        streams, ln, w_u, eps = example
        ins = {"streams": streams, "ln_f": ln, "w_u": w_u, "eps": eps}
        got = call(fn, "logit_lens", ins, streams.copy(), {k: v.copy() for k, v in ln.items()}, w_u.copy(), eps)
        bare = {"weight": np.ones_like(ln["weight"]), "bias": np.zeros_like(ln["bias"])}

        def norm_over(axis):
            mu = streams.mean(axis, keepdims=True)
            y = (streams - mu) / np.sqrt(streams.var(axis, keepdims=True) + eps)
            return (y * ln["weight"] + ln["bias"]) @ w_u

        compare(
            got,
            lens(streams, ln, w_u, eps),
            ins,
            [
                (
                    "you read the residual stream without the final norm: the lens is LN_f(h) · W_U, the stream "
                    "normalised (mean and variance over the channels, then γ and β) before the unembedding, "
                    "because that is what the model's last layer does to it.",
                    lambda: streams @ w_u,
                ),
                (
                    "apply the final norm's gain γ (ln_f['weight']) and bias β (ln_f['bias']) too.",
                    lambda: lens(streams, bare, w_u, eps),
                ),
                ("normalise over the channels (the last axis), not over the positions.", lambda: norm_over(1)),
                ("normalise over the channels (the last axis), not over the layers.", lambda: norm_over(0)),
            ],
            what="logit_lens",
        )

    run(prop, inputs(), max_examples)


def reveal() -> bool:
    """Whether failure messages may show expected values (at the student's desk, not when graded)."""
    return current().reveal


def attribute_reference(parts: np.ndarray, ln: dict[str, np.ndarray], u: np.ndarray, eps: float) -> np.ndarray:
    """Each part's share (P,) of u · LN_f(Σ parts), the final LayerNorm's scale held at the whole stream's."""
    return frozen_norm(parts, parts.sum(0), ln, "layernorm", eps) @ u


def check_attribute(fn: Callable[..., np.ndarray], max_examples: int = 25) -> None:
    """``fn(parts, ln_f, u, eps)``: parts (P, C) sum to the residual stream h at one position; return each part's
    share (P,) of the logit u · LN_f(h), the final norm's scale held fixed, so that Σ shares + β · u = u · LN_f(h)."""

    @st.composite
    def inputs(draw):
        P, C = draw(st.integers(2, 6)), draw(st.integers(2, 8))
        rng = generator(draw)
        return _streams(rng, (P, C)), draw(_final_norm(C)), rng.standard_normal(C), 1e-5

    def prop(example):
        parts, ln, u, eps = example
        ins = {"parts": parts, "ln_f": ln, "u": u, "eps": eps}
        got = call(fn, "attribute", ins, parts.copy(), {k: v.copy() for k, v in ln.items()}, u.copy(), eps)
        want = attribute_reference(parts, ln, u, eps)
        whole = F.layer_norm(parts.sum(0), ln["weight"], ln["bias"], eps) @ u  # the logit itself
        own_scale = (parts - parts.mean(-1, keepdims=True)) / np.sqrt(parts.var(-1, keepdims=True) + eps)
        sums = "your shares do not sum to the logit: "
        mistakes = [
            (
                sums + "you normalised each part with its own standard deviation; hold the final norm's scale at "
                "the whole stream's, 1/√(var(Σ parts) + ε), the same for every part.",
                lambda: (own_scale * ln["weight"]) @ u,
            ),
            (
                sums + "you applied the whole final norm to each part; centre each part and scale it by the whole "
                "stream's 1/√(var(Σ parts) + ε), and leave β · u out (it is a part of its own).",
                lambda: (own_scale * ln["weight"] + ln["bias"]) @ u,
            ),
            (
                sums + "subtract each part's mean over the channels: LayerNorm centres the whole stream, and the "
                "mean of a sum is the sum of the means, so every part is centred.",
                lambda: (parts / np.sqrt(parts.sum(0).var() + eps) * ln["weight"]) @ u,
            ),
            (sums + "β · u is added once (a part of its own), not to every part.", lambda: want + ln["bias"] @ u),
            (
                sums + "multiply by the final norm's gain γ (ln_f['weight']).",
                lambda: frozen_norm(parts, parts.sum(0), {"weight": 1.0}, "layernorm", eps) @ u,
            ),
        ]
        try:
            compare(got, want, ins, mistakes, what="attribute")
        except AssertionError as e:
            total = float(np.sum(got)) + float(ln["bias"] @ u) if np.shape(got) == want.shape else None
            if "do not sum" in str(e) or total is None or np.isclose(total, whole, rtol=1e-6, atol=1e-9):
                raise
            numbers = f" (Σ shares + β·u = {total:.6g}, u · LN_f(Σ parts) = {whole:.6g})" if reveal() else ""
            raise AssertionError(
                f"attribute: {sums.rstrip(': ')}{numbers}. {str(e).removeprefix('attribute: ')}"
            ) from None

    run(prop, inputs(), max_examples)


def check_patch_position(fn: Callable[..., np.ndarray], max_examples: int = 25) -> None:
    """``fn(corrupted, clean, position)``, activations (B, T, C): a copy of ``corrupted`` with position ``position``
    (of the time axis, 1) taken from ``clean``; ``corrupted`` itself is left as it was."""

    @st.composite
    def inputs(draw):
        B, T, C = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 7))
        rng = generator(draw)
        return rng.standard_normal((B, T, C)), rng.standard_normal((B, T, C)), draw(st.integers(0, T - 1))

    def patched(corrupted, clean, index):
        out = corrupted.copy()
        out[index] = clean[index]
        return out

    def prop(example):
        corrupted, clean, t = example
        ins = {"corrupted": corrupted, "clean": clean, "position": t}
        theirs = corrupted.copy()
        got = call(fn, "patch_position", ins, theirs, clean.copy(), t)
        if not np.array_equal(theirs, corrupted):
            raise AssertionError(
                "patch_position: you changed the corrupted activations in place; return a patched copy "
                "(corrupted.copy()), so that the corrupted run stays as it was.\n" + describe(ins)
            )
        B, T, C = corrupted.shape
        wrong = [("you patched every position; patch only `position`, the others stay corrupted.", lambda: clean)]
        for other in (t - 1, t + 1, T - 1 - t):
            if 0 <= other < T and other != t:
                wrong.append(
                    (
                        f"you patched position {other} instead of {t}: positions count from 0 along axis 1.",
                        lambda o=other: patched(corrupted, clean, (slice(None), o)),
                    )
                )
        if t < C:
            wrong.append(
                (
                    f"you patched channel {t} of every position; the time axis is axis 1 of (B, T, C).",
                    lambda: patched(corrupted, clean, (slice(None), slice(None), t)),
                )
            )
        if t < B:
            wrong.append(
                (
                    f"you patched batch row {t}; the time axis is axis 1 of (B, T, C).",
                    lambda: patched(corrupted, clean, (t,)),
                )
            )
        compare(got, patched(corrupted, clean, (slice(None), t)), ins, wrong, what="patch_position")

    run(prop, inputs(), max_examples)


CHECKS: dict[str, Callable[..., Any]] = {
    "logit_lens": check_logit_lens,
    "attribute": check_attribute,
    "patch_position": check_patch_position,
}
