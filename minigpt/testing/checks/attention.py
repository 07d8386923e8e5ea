"""Checkers for lesson 01, scaled dot-product attention: softmax, the causal mask, attention.

Each ``check_*`` runs the student's function on hypothesis-drawn inputs (derandomized, so every
student sees the same examples), compares it with ``minigpt.reference`` in float64 and, on the
first mismatch, lets hypothesis shrink the input to the smallest one that still fails. The
``AssertionError`` says what is wrong in words, found by matching the student's output against a
zoo of known mistakes (softmax over the wrong axis, no 1/√d_k, …), and shows that smallest input.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import functional as F
from minigpt.testing.checks.diagnosis import arrays, call, compare, describe, run

# -- softmax ---------------------------------------------------------------------------------------


def check_softmax(fn: Callable[[np.ndarray], np.ndarray], max_examples: int = 50) -> None:
    """``fn(x)`` must return softmax over the last axis of x (any shape), stable for large inputs."""

    @st.composite
    def inputs(draw):
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        return arrays(draw, shape, draw(st.sampled_from([1.0, 5.0, 1000.0])))

    def prop(x):
        ins = {"x": x}
        got = call(fn, "softmax", ins, x.copy())
        wrong_axis = "softmax taken over the wrong axis: each row along the LAST axis must sum to 1."
        compare(
            got,
            F.softmax(x),
            ins,
            [(wrong_axis, lambda a=axis: F.softmax(x, axis=a)) for axis in range(x.ndim - 1)]
            + [
                ("you exponentiated but did not divide by the sum of exponentials.", lambda: np.exp(x)),
                (
                    "you exponentiated but did not divide by the sum of exponentials.",
                    lambda: np.exp(x - x.max(-1, keepdims=True)),
                ),
            ],
            what="softmax",
        )

    run(prop, inputs(), max_examples)


# -- attention -------------------------------------------------------------------------------------


def _attn(q, k, v, mask, *, scale=None, axis=-1, apply_mask=True):
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / (math.sqrt(d_k) if scale is None else scale)
    if mask is not None and apply_mask:
        scores = scores + mask
    return F.softmax(scores, axis=axis) @ v


def check_attention(fn: Callable[..., np.ndarray], max_examples: int = 50) -> None:
    """``fn(q, k, v, mask)`` must return softmax(QKᵀ/√d_k + mask)V; mask is additive (0 / −∞) or None."""

    @st.composite
    def inputs(draw):
        B, T, d_k, d_v = (draw(st.integers(1, n)) for n in (2, 6, 6, 5))
        T = max(T, 2)
        d_k = max(d_k, 2)
        q, k, v = arrays(draw, (B, T, d_k), 2.0), arrays(draw, (B, T, d_k), 2.0), arrays(draw, (B, T, d_v))
        return q, k, v, draw(st.booleans())

    def prop(example):
        q, k, v, causal = example
        T, d_k = q.shape[1], q.shape[-1]
        mask = F.causal_mask(T, q.dtype) if causal else None
        ins = {"q": q, "k": k, "v": v, "mask": mask}
        got = call(fn, "attention", ins, q.copy(), k.copy(), v.copy(), None if mask is None else mask.copy())
        compare(
            got,
            F.scaled_dot_product_attention(q, k, v, mask),
            ins,
            [
                ("your weights are not scaled by 1/√d_k (scores = QKᵀ/√d_k).", lambda: _attn(q, k, v, mask, scale=1.0)),
                ("you scaled by 1/d_k; the scale is 1/√d_k.", lambda: _attn(q, k, v, mask, scale=d_k)),
                (
                    "softmax taken over the wrong axis: normalise over the keys (last axis), so each query's "
                    "weights sum to 1.",
                    lambda: _attn(q, k, v, mask, axis=-2),
                ),
                (
                    "position t attends to the future: the mask was not added to the scores before the softmax.",
                    lambda: _attn(q, k, v, mask, apply_mask=False),
                ),
                (
                    "the weights multiply V from the wrong side or K is not transposed (scores must be QKᵀ).",
                    lambda: (
                        F.softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(d_k) + (0 if mask is None else mask))
                        @ v[..., ::-1, :]
                    ),
                ),
            ],
            what="attention",
        )

    run(prop, inputs(), max_examples)


def check_causal_mask(fn: Callable[[int], np.ndarray], max_examples: int = 20) -> None:
    """``fn(T)`` must return the additive causal mask: 0 on and below the diagonal, −∞ above it."""

    def prop(T):
        ins = {"T": T}
        got = np.asarray(call(fn, "causal_mask", ins, T), dtype=float)
        want = F.causal_mask(T, np.float64)
        if got.shape != want.shape:
            raise AssertionError(f"causal_mask: shape {got.shape}, expected {want.shape}.\n" + describe(ins))
        above, on_below = np.triu(np.ones((T, T), bool), 1), np.tril(np.ones((T, T), bool))
        if np.any(got[on_below] != 0):
            raise AssertionError(
                "causal_mask: position t must see itself and the past (0 on and below the diagonal); your mask "
                "blocks some of them — did you mask the wrong triangle?\n" + describe(ins)
            )
        if T > 1 and not np.all(np.isneginf(got[above])):
            value = got[above][~np.isneginf(got[above])][0]
            raise AssertionError(
                f"causal_mask: position t attends to the future — above the diagonal your mask holds {value:g}; "
                "use -np.inf so that softmax gives those positions exactly zero weight.\n" + describe(ins)
            )

    run(prop, st.integers(1, 12), max_examples)
