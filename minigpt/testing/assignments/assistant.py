"""Exercises for lesson 11 (from model to assistant): SFT's targets and masked loss, a reply's log-probability,
the DPO loss and its gradient by jax.grad with the reference frozen."""

from __future__ import annotations

from functools import partial

from minigpt.testing.checks import assistant as A
from minigpt.testing.grader.grading import Assignment

ASSIGNMENT = Assignment("11_from_model_to_assistant")
ASSIGNMENT.task("sft_targets").check(
    "shifted by one, masked by the predicted token", 2, partial(A.check_sft_targets, max_examples=20)
).check("on fresh inputs", 1, partial(A.check_sft_targets, max_examples=10), hidden=True)
ASSIGNMENT.task("sft_loss").check(
    "the mean over the reply's tokens, 0 without any", 3, partial(A.check_sft_loss, max_examples=20)
).check("on fresh inputs", 1, partial(A.check_sft_loss, max_examples=10), hidden=True)
ASSIGNMENT.task("sequence_logprobs").check(
    "matches reference.dpo.sequence_logprobs", 2, partial(A.check_sequence_logprobs, max_examples=20)
).check("on fresh inputs", 1, partial(A.check_sequence_logprobs, max_examples=10), hidden=True)
ASSIGNMENT.task("dpo_loss").check(
    "matches reference.dpo.dpo_loss", 3, partial(A.check_dpo_loss, max_examples=25)
).check("on fresh inputs", 1, partial(A.check_dpo_loss, max_examples=10), hidden=True)
ASSIGNMENT.task("dpo_grads").check("jax.grad, with π_ref frozen", 3, partial(A.check_dpo_grads, max_examples=10)).check(
    "on fresh inputs", 1, partial(A.check_dpo_grads, max_examples=5), hidden=True
)
