"""Exercises for lesson 08 (e-commerce): conditional log-likelihood, the zero-shot sentiment score, and
per-class precision and recall."""

from __future__ import annotations

from functools import partial

import numpy as np

from minigpt.reference import functional as F
from minigpt.testing.checks import ecommerce as A
from minigpt.testing.grader.grading import Assignment


def conditional_log_likelihood_reference(logits_fn, ids, label_id) -> float:
    seq = [label_id, *ids]
    logp = F.log_softmax(np.asarray(logits_fn([seq]), np.float64)[0])
    return float(sum(logp[t - 1, seq[t]] for t in range(1, len(seq))))


ASSIGNMENT = Assignment("08_ecommerce_applications")
ASSIGNMENT.task("conditional_log_likelihood", reference=conditional_log_likelihood_reference).check(
    "matches log P(review | label)", 3, partial(A.check_conditional_log_likelihood, max_examples=12)
)
ASSIGNMENT.task("zero_shot_score").check(
    "matches the zero-shot score", 2, partial(A.check_zero_shot_score, max_examples=12)
).check("on fresh inputs", 1, partial(A.check_zero_shot_score, max_examples=6), hidden=True)
ASSIGNMENT.task("precision_recall").check(
    "matches per-class P and R", 2, partial(A.check_precision_recall, max_examples=20)
)
