"""Exercises for lesson 02 (multi-head attention): split the heads, merge them, multi-head causal attention."""

from __future__ import annotations

from functools import partial

import numpy as np

from minigpt.reference import functional as F
from minigpt.testing import checkers, context
from minigpt.testing.checks.multi_head import check_merge_heads, check_split_heads
from minigpt.testing.grader.grading import Assignment


def head_h_is_slice_h(split_heads) -> None:
    x = context.rng(1).standard_normal((2, 3, 12))
    heads = np.asarray(split_heads(x, 4))
    for h in range(4):
        if heads.shape != (2, 4, 3, 3) or not np.allclose(heads[:, h], x[..., 3 * h : 3 * h + 3]):
            raise AssertionError(
                f"split_heads: head {h} must be channels {3 * h}…{3 * h + 2} of x (for C=12, 4 heads), as a (T, d_k) "
                "matrix per batch row."
            )


ASSIGNMENT = Assignment("02_multi_head_attention")
ASSIGNMENT.task("split_heads", reference=F.split_heads).check(
    "matches the reference", 2, partial(check_split_heads, max_examples=15)
).check("head h holds channels h·d_k … (h+1)·d_k−1", 1, head_h_is_slice_h, hidden=True)
ASSIGNMENT.task("merge_heads", reference=F.merge_heads).check(
    "matches the reference", 2, partial(check_merge_heads, max_examples=15)
)
ASSIGNMENT.task("multi_head_attention", reference=F.multi_head_attention).check(
    "matches the reference", 3, partial(checkers.check_multi_head_attention, max_examples=15)
).check(
    "matches the reference on fresh inputs",
    1,
    partial(checkers.check_multi_head_attention, max_examples=8),
    hidden=True,
)
