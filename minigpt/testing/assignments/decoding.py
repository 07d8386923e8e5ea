"""Exercises for lesson 07 (decoding): top-k and top-p filtering, one beam-search step, the banned-phrase mask."""

from __future__ import annotations

from functools import partial

from minigpt.testing.checks import decoding as D
from minigpt.testing.grader.grading import Assignment

ASSIGNMENT = Assignment("07_decoding")
ASSIGNMENT.task("top_k_filter").check("matches the reference", 2, partial(D.check_top_k_filter, max_examples=20))
ASSIGNMENT.task("top_p_filter").check("matches the reference", 2, partial(D.check_top_p_filter, max_examples=20)).check(
    "on fresh inputs", 1, partial(D.check_top_p_filter, max_examples=10), hidden=True
)
ASSIGNMENT.task("beam_step").check("the K best extensions, best first", 3, partial(D.check_beam_step, max_examples=20))
ASSIGNMENT.task("banned_mask").check(
    "matches BannedPhrases.mask", 3, partial(D.check_banned_mask, max_examples=30)
).check("on fresh inputs", 1, partial(D.check_banned_mask, max_examples=15), hidden=True)
