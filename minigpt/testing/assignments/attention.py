"""Exercises for lesson 01 (scaled dot-product attention): softmax, the causal mask, attention."""

from __future__ import annotations

import functools

import numpy as np

from minigpt.reference import functional as F
from minigpt.testing import checkers, context
from minigpt.testing.grader.grading import Assignment


def rows_sum_to_one(softmax) -> None:
    x = context.rng(1).standard_normal((3, 4, 5)) * 3
    rows = np.asarray(softmax(x)).sum(axis=-1)
    if rows.shape != (3, 4) or not np.allclose(rows, 1.0):
        raise AssertionError(
            "softmax: the weights along the LAST axis must sum to 1 for every row (here for an input of shape "
            "(3, 4, 5)); normalise over axis=-1."
        )


def no_weight_on_the_future(attention) -> None:
    """Changing a future key and value must not move an earlier output: what the mask is for."""
    rng = context.rng(2)
    q, k, v = (rng.standard_normal((2, 5, 3)) for _ in range(3))
    mask = F.causal_mask(5, np.float64)
    before = np.asarray(attention(q, k, v, mask))
    k2, v2 = k.copy(), v.copy()
    k2[:, -1] += 10.0
    v2[:, -1] += 10.0
    after = np.asarray(attention(q, k2, v2, mask))
    if before.shape != after.shape or not np.allclose(before[:, :-1], after[:, :-1]):
        raise AssertionError(
            "attention: position t attends to the future — changing the last key and value moved the outputs "
            "of earlier positions. Add the mask to the scores before the softmax."
        )


ASSIGNMENT = Assignment("01_attention")
ASSIGNMENT.task("softmax", reference=F.softmax).check("rows sum to one", 1, rows_sum_to_one).check(
    "matches the reference (any shape, stable)", 2, functools.partial(checkers.check_softmax, max_examples=20)
).check(
    "matches the reference on fresh inputs", 1, functools.partial(checkers.check_softmax, max_examples=10), hidden=True
)
ASSIGNMENT.task("causal_mask", reference=lambda T: F.causal_mask(T, np.float64)).check(
    "0 on and below the diagonal, -inf above", 2, functools.partial(checkers.check_causal_mask, max_examples=12)
)
ASSIGNMENT.task("attention", reference=F.scaled_dot_product_attention).check(
    "matches the reference", 3, functools.partial(checkers.check_attention, max_examples=20)
).check("no weight on the future", 1, no_weight_on_the_future, hidden=True)
