"""Exercises for lesson 04 (backpropagation by hand): linear, LayerNorm, softmax and attention backward."""

from __future__ import annotations

from functools import partial

from minigpt.reference.functional_backward import softmax_backward
from minigpt.testing.checkers import check_layer_backward
from minigpt.testing.grader.grading import Assignment

# attention_backward may use the student's softmax_backward: the reference stands in while it is graded
REFERENCES = {"softmax": softmax_backward}

ASSIGNMENT = Assignment("04_backprop")
for layer, points in (("linear", 2), ("layer_norm", 3), ("softmax", 2), ("attention", 3)):
    ASSIGNMENT.task(f"{layer}_backward", reference=REFERENCES.get(layer)).check(
        "matches the reference and finite differences",
        points,
        partial(check_layer_backward, layer=layer, max_examples=10),
    ).check("on fresh inputs", 1, partial(check_layer_backward, layer=layer, max_examples=5), hidden=True)
