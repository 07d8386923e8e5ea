"""Exercises for lesson 12 (looking inside): the logit lens, logit attribution, patching one position."""

from __future__ import annotations

from functools import partial

from minigpt.testing.checks import looking_inside as I
from minigpt.testing.grader.grading import Assignment

ASSIGNMENT = Assignment("12_looking_inside")
ASSIGNMENT.task("logit_lens").check("matches LN_f(h) · W_U", 3, partial(I.check_logit_lens, max_examples=20)).check(
    "on fresh inputs", 1, partial(I.check_logit_lens, max_examples=10), hidden=True
)
ASSIGNMENT.task("attribute").check("the shares sum to the logit", 3, partial(I.check_attribute, max_examples=20)).check(
    "on fresh inputs", 1, partial(I.check_attribute, max_examples=10), hidden=True
)
ASSIGNMENT.task("patch_position").check(
    "only that position, from the clean run", 2, partial(I.check_patch_position, max_examples=20)
).check("on fresh inputs", 1, partial(I.check_patch_position, max_examples=10), hidden=True)
