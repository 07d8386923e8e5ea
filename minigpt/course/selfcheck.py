"""The graded checks, run at the desk: what a source notebook's hidden-test cells call.

``check_graded("01_attention", softmax)`` runs every check ``minigpt grade`` would score ``softmax`` with, the
hidden ones included, on a fixed student id's inputs, and raises an ``AssertionError`` naming the check that
failed. A source notebook run top to bottom (``tests/test_notebooks.py``) thereby proves its solutions earn
every point; the student's notebook never sees these calls (``minigpt.course.markers`` removes them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minigpt.testing import context
from minigpt.testing.assignments import load_assignment
from minigpt.testing.grader.grading import student_seed

INSTRUCTOR_ID = "instructor"  # the student id whose inputs the desk run uses


def check_graded(assignment: str, fn: Callable[..., Any]) -> None:
    """Run every graded check of the task that grades ``fn`` (found by its ``__name__``); raise if one fails."""
    declared = load_assignment(assignment)
    name = getattr(fn, "__name__", "")
    tasks = [t for t in declared.tasks if t.function == name]
    if not tasks:
        functions = ", ".join(t.function for t in declared.tasks)
        raise ValueError(f"{assignment} grades no function named {name!r}; pass one of: {functions}")
    task = tasks[0]
    for check in task.checks:
        seed = student_seed(INSTRUCTOR_ID, declared.name, task.name, check.name)
        with context.grading(seed, reveal=True):
            try:
                value = check.run(fn)
            except AssertionError as e:
                kind = "hidden check" if check.hidden else "check"
                raise AssertionError(f"{task.name}: the graded {kind} {check.name!r} failed: {e}") from e
        if value not in (None, True, 1, 1.0):
            raise AssertionError(f"{task.name}: the graded check {check.name!r} gave partial credit {value!r}")
