"""Exercises for lesson 06 (training): the warmup-cosine schedule, one AdamW step, global-norm clipping."""

from __future__ import annotations

from functools import partial

from minigpt.testing.checks.training import check_adamw_step, check_clip_by_global_norm, check_warmup_cosine
from minigpt.testing.grader.grading import Assignment

ASSIGNMENT = Assignment("06_training")
ASSIGNMENT.task("warmup_cosine").check("matches lr(step)", 2, partial(check_warmup_cosine, max_examples=15)).check(
    "on fresh settings", 1, partial(check_warmup_cosine, max_examples=8), hidden=True
)
ASSIGNMENT.task("adamw_step").check("matches one AdamW step", 3, partial(check_adamw_step, max_examples=15)).check(
    "on fresh inputs", 1, partial(check_adamw_step, max_examples=8), hidden=True
)
ASSIGNMENT.task("clip_by_global_norm").check(
    "matches global-norm clipping", 2, partial(check_clip_by_global_norm, max_examples=15)
)
