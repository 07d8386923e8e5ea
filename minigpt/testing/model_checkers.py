"""Checkers for the GPT's tensor plumbing and its likelihood: splitting and merging heads (lesson 02) and the
causal log-likelihood of a sequence (lesson 03). Same contract as ``minigpt.testing.checkers``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import functional as F
from minigpt.testing.diagnosis import arrays, call, compare, generator, run

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


def check_sequence_log_likelihood(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], max_examples: int = 25) -> None:
    """``fn(logits, idx)`` with logits (B, T, V) from a forward over idx (B, T) returns, per row (B,),
    log P(x_2 … x_T | x_1) = Σ_{t=1}^{T-1} log softmax(logits[:, t-1])[idx[:, t]]: position t−1 predicts token t."""

    @st.composite
    def inputs(draw):
        B, T, V = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 7))
        logits = arrays(draw, (B, T, V), draw(st.sampled_from([1.0, 3.0, 50.0])))
        return logits, generator(draw).integers(0, V, (B, T))

    def prop(example):
        logits, idx = example
        ins = {"logits": logits, "idx": idx}
        got = np.asarray(call(fn, "sequence_log_likelihood", ins, logits.copy(), idx.copy()))
        logp = F.log_softmax(logits)
        picked = np.take_along_axis(logp[:, :-1], idx[:, 1:, None], -1)[..., 0]  # (B, T-1)
        same = np.take_along_axis(logp, idx[..., None], -1)[..., 0]  # logits[t] scored on token t: no shift
        compare(
            got,
            picked.sum(-1),
            ins,
            [
                (
                    "no shift: the logits at position t predict the NEXT token idx[t+1]; score logits[:, :-1] "
                    "against idx[:, 1:].",
                    lambda: same.sum(-1),
                ),
                (
                    "no shift, and the last position was scored too: use logits[:, :-1] against idx[:, 1:].",
                    lambda: same[:, 1:].sum(-1),
                ),
                (
                    "that is the mean over positions; the log-likelihood of a sequence is the SUM.",
                    lambda: picked.mean(-1),
                ),
                ("you summed probabilities; sum the LOG-probabilities (log softmax).", lambda: np.exp(picked).sum(-1)),
                ("wrong sign: a log-likelihood is ≤ 0 (this is the negative log-likelihood).", lambda: -picked.sum(-1)),
                (
                    "you returned one number for the batch; return one log-likelihood per row, shape (B,).",
                    lambda: picked.sum(),
                ),
            ],
            what="sequence_log_likelihood",
        )

    run(prop, inputs(), max_examples)
