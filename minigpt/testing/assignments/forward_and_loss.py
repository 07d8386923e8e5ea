"""Exercises for lesson 03: the GPT forward, the loss, and the loss as a causal log-likelihood."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from minigpt.reference import model as M
from minigpt.testing import checkers, context
from minigpt.testing.checks.forward_and_loss import check_sequence_log_likelihood
from minigpt.testing.grader.grading import Assignment


def uniform_is_log_v(loss) -> None:
    V = int(context.rng(1).integers(3, 40))
    targets = context.rng(2).integers(0, V, (2, 5))
    got = float(loss(np.zeros((2, 5, V)), targets, -1))
    if not math.isclose(got, math.log(V), rel_tol=1e-9):
        raise AssertionError(
            f"loss: a model that gives every one of V={V} tokens the same logit must have loss ln V; yours gives "
            f"{got:.6g}. Check the sign and that you take the mean over positions."
        )


def sequence_log_likelihood_reference(logits: np.ndarray, idx: np.ndarray) -> np.ndarray:
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return np.take_along_axis(logp[:, :-1], idx[:, 1:, None], -1)[..., 0].sum(-1)


ASSIGNMENT = Assignment("03_gpt_forward_and_loss")
ASSIGNMENT.task("gpt_forward", reference=M.forward).check(
    "matches the reference, and is causal", 3, partial(checkers.check_gpt_forward, max_examples=10)
)
ASSIGNMENT.task("loss", reference=M.cross_entropy).check(
    "matches the reference", 2, partial(checkers.check_loss, max_examples=20)
).check("uniform logits give ln V", 1, uniform_is_log_v, hidden=True)
ASSIGNMENT.task("sequence_log_likelihood", reference=sequence_log_likelihood_reference).check(
    "matches the reference", 2, partial(check_sequence_log_likelihood, max_examples=20)
).check(
    "matches the reference on fresh inputs", 1, partial(check_sequence_log_likelihood, max_examples=10), hidden=True
)
