"""Checkers for the GPT's tensor plumbing and its likelihood: splitting and merging heads (lesson 02) and the
causal log-likelihood of a sequence (lesson 03). Same contract as ``minigpt.testing.checkers``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import functional as F
from minigpt.testing.checks.diagnosis import arrays, call, compare, run

_ORDER = (
    "heads split in the wrong order: head h owns channels h·d_k … (h+1)·d_k−1, so reshape (B, T, C) → "
    "(B, T, H, d_k) and then transpose to (B, H, T, d_k)."
)


@st.composite
def _heads_input(draw):
    B, T, H, d = draw(st.integers(1, 2)), draw(st.integers(2, 4)), draw(st.integers(2, 3)), draw(st.integers(2, 3))
    return arrays(draw, (B, T, H * d)), H


def check_split_heads(fn: Callable[[np.ndarray, int], np.ndarray], max_examples: int = 20) -> None:
    """``fn(x, n_head)``: (B, T, C) → (B, H, T, C/H), head h holding channels [h·d_k, (h+1)·d_k)."""

    def prop(example):
        x, H = example
        B, T, C = x.shape
        d = C // H
        ins = {"x": x, "n_head": H}
        got = call(fn, "split_heads", ins, x.copy(), H)
        if T != H and np.shape(got) == (B, T, H, d):
            raise AssertionError(
                "split_heads: you reshaped to (B, T, H, d_k) but did not transpose: the result must be "
                f"(B, H, T, d_k) = {(B, H, T, d)} so that each head is a (T, d_k) matrix."
            )
        compare(
            got,
            F.split_heads(x, H),
            ins,
            [
                (
                    "reshaping (B, T, C) straight to (B, H, T, d_k) — or to (B, T, H, d_k) without the transpose — "
                    "mixes positions and heads: reshape to (B, T, H, d_k), then transpose to (B, H, T, d_k).",
                    lambda: x.reshape(B, H, T, d),
                ),
                (_ORDER, lambda: x.reshape(B, T, d, H).transpose(0, 3, 1, 2)),
            ],
            what="split_heads",
        )

    run(prop, _heads_input(), max_examples)


def check_merge_heads(fn: Callable[[np.ndarray], np.ndarray], max_examples: int = 20) -> None:
    """``fn(y)``: (B, H, T, d_k) → (B, T, H·d_k), the heads side by side (the inverse of split_heads)."""

    def prop(example):
        x, H = example
        y = F.split_heads(x, H)
        B, _, T, d = y.shape
        ins = {"y": y}
        got = call(fn, "merge_heads", ins, y.copy())
        compare(
            got,
            F.merge_heads(y),
            ins,
            [
                (
                    "you reshaped (B, H, T, d_k) straight to (B, T, C): that mixes positions and heads; transpose "
                    "to (B, T, H, d_k) first, then reshape.",
                    lambda: y.reshape(B, T, H * d),
                ),
                (
                    "heads merged in the wrong order: Concat(head_1, …, head_H) puts head h in channels "
                    "h·d_k … (h+1)·d_k−1; transpose to (B, T, H, d_k), not (B, T, d_k, H).",
                    lambda: y.transpose(0, 2, 3, 1).reshape(B, T, H * d),
                ),
            ],
            what="merge_heads",
        )

    run(prop, _heads_input(), max_examples)


# -- multi-head attention --------------------------------------------------------------------------


def _mha(x, attn, n_head, *, split="ok", mask_value=-np.inf, scale="d_k", transpose_proj=False):
    B, T, C = x.shape
    d = C // n_head
    qkv = x @ attn["c_attn"]["weight"] + attn["c_attn"]["bias"]

    def heads(t):
        if split == "interleaved":  # channel c goes to head c % H instead of c // d
            return t.reshape(B, T, d, n_head).transpose(0, 3, 1, 2)
        if split == "reshape":  # (B, T, C) reshaped straight to (B, H, T, d): mixes time and heads
            return t.reshape(B, n_head, T, d)
        return t.reshape(B, T, n_head, d).transpose(0, 2, 1, 3)

    q, k, v = (heads(t) for t in np.split(qkv, 3, axis=-1))
    s = {"d_k": math.sqrt(d), "C": math.sqrt(C), "none": 1.0}[scale]
    scores = q @ np.swapaxes(k, -1, -2) / s + np.where(np.triu(np.ones((T, T), bool), 1), mask_value, 0.0)
    y = F.softmax(scores) @ v
    if split == "interleaved":
        y = y.transpose(0, 2, 3, 1).reshape(B, T, C)
    elif split == "reshape":
        y = y.reshape(B, T, C)
    else:
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
    w = attn["c_proj"]["weight"]
    return y @ (w.T if transpose_proj else w) + attn["c_proj"]["bias"]


def check_multi_head_attention(fn: Callable[..., np.ndarray], max_examples: int = 40) -> None:
    """``fn(x, attn, n_head)`` must return causal Concat(head_1..head_H)Wᴼ (see reference.multi_head_attention).

    ``attn`` = {"c_attn": {"weight": (C, 3C), "bias": (3C,)}, "c_proj": {"weight": (C, C), "bias": (C,)}}.
    """

    @st.composite
    def inputs(draw):
        H = draw(st.integers(2, 3))
        d = draw(st.integers(2, 4))
        C, T, B = H * d, draw(st.integers(2, 5)), draw(st.integers(1, 2))
        attn = {
            "c_attn": {"weight": arrays(draw, (C, 3 * C), 0.5), "bias": arrays(draw, (3 * C,), 0.1)},
            "c_proj": {"weight": arrays(draw, (C, C), 0.5), "bias": arrays(draw, (C,), 0.1)},
        }
        return arrays(draw, (B, T, C)), attn, H

    def prop(example):
        x, attn, H = example
        ins = {"x": x, "attn": attn, "n_head": H}
        copy = {p: {n: a.copy() for n, a in d.items()} for p, d in attn.items()}
        got = call(fn, "multi_head_attention", ins, x.copy(), copy, H)
        compare(
            got,
            F.multi_head_attention(x, attn, H),
            ins,
            [
                (
                    "heads split in the wrong order: head h owns channels h·d_k … (h+1)·d_k−1, so reshape "
                    "(B, T, C) → (B, T, H, d_k) and then transpose to (B, H, T, d_k).",
                    lambda: _mha(x, attn, H, split="interleaved"),
                ),
                (
                    "heads split in the wrong order: reshaping (B, T, C) straight to (B, H, T, d_k) mixes "
                    "positions and heads; reshape to (B, T, H, d_k) and then transpose to (B, H, T, d_k).",
                    lambda: _mha(x, attn, H, split="reshape"),
                ),
                ("position t attends to the future: apply the causal mask.", lambda: _mha(x, attn, H, mask_value=0.0)),
            ]
            + [
                (
                    f"position t attends to the future a little: the mask adds {m:g} above the diagonal, which "
                    "leaves future positions some weight; use -np.inf.",
                    lambda m=m: _mha(x, attn, H, mask_value=m),
                )
                for m in (-1.0, -10.0, -100.0)
            ]
            + [
                ("your weights are not scaled by 1/√d_k.", lambda: _mha(x, attn, H, scale="none")),
                (
                    "scaled by 1/√C; use the head size: 1/√d_k with d_k = C / n_head.",
                    lambda: _mha(x, attn, H, scale="C"),
                ),
                (
                    "a weight is transposed: weights are stored (in, out), so compute x @ W (not x @ W.T).",
                    lambda: _mha(x, attn, H, transpose_proj=True),
                ),
            ],
            what="multi_head_attention",
        )

    run(prop, inputs(), max_examples)
