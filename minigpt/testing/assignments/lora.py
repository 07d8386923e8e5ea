"""Exercises for lesson 09 (transfer learning): LoRA's initialisation, adapted forward and training step."""

from __future__ import annotations

from functools import partial

from minigpt.testing.checks.lora import check_lora
from minigpt.testing.grader.grading import Assignment


def _init(fn, max_examples: int) -> None:
    check_lora(init=fn, max_examples=max_examples)


def _forward(fn, max_examples: int) -> None:
    check_lora(forward=fn, max_examples=max_examples)


def _step(fn, max_examples: int) -> None:
    check_lora(step=fn, max_examples=max_examples)


ASSIGNMENT = Assignment("09_transfer_learning")
ASSIGNMENT.task("lora_init").check("A random (in, r), B zero (r, out)", 2, partial(_init, max_examples=15))
ASSIGNMENT.task("lora_forward").check("matches x W + b + (α/r) (x A) B", 3, partial(_forward, max_examples=20)).check(
    "on fresh inputs", 1, partial(_forward, max_examples=10), hidden=True
)
ASSIGNMENT.task("lora_step").check("one SGD step on A and B, W and b frozen", 3, partial(_step, max_examples=15)).check(
    "on fresh inputs", 1, partial(_step, max_examples=8), hidden=True
)
