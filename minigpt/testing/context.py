"""Whether a check runs for a student at their desk or for a grade: the seed of its inputs and what it may say.

At the desk (the default) the checkers are derandomized, so every student sees the same examples, and a
mismatch shows the expected value. Under ``grading(seed)`` the inputs come from that seed (one per student
and check, see ``minigpt.testing.grader.grading.student_seed``) and no message prints an expected answer.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CheckContext:
    seed: int | None = None  # None: derandomized, the same examples for everyone
    reveal: bool = True  # may a failure message show the expected value?


_DESK = CheckContext()
_CURRENT: contextvars.ContextVar[CheckContext | None] = contextvars.ContextVar("minigpt_check_context", default=None)


def current() -> CheckContext:
    """The context the running check is in."""
    return _CURRENT.get() or _DESK


@contextlib.contextmanager
def grading(seed: int, *, reveal: bool = False) -> Iterator[CheckContext]:
    """Run the checks inside with inputs drawn from ``seed`` and, unless ``reveal``, no expected values shown."""
    token = _CURRENT.set(CheckContext(seed=int(seed), reveal=reveal))
    try:
        yield current()
    finally:
        _CURRENT.reset(token)


def rng(salt: int = 0) -> np.random.Generator:
    """A NumPy generator for a check's own inputs: from the grading seed, or fixed at the desk."""
    seed = current().seed
    return np.random.default_rng([0 if seed is None else seed, salt])
