"""Graded tasks: what an instructor declares, and how one task of a submission is scored.

An assignment is a list of tasks; a task names the function the student writes and holds checks, each worth
points and visible to the student or hidden (shown to instructors only). A check is any callable that takes
the student's function and raises ``AssertionError`` with a diagnosis when it is wrong — every
``minigpt.testing`` checker is one — or returns a fraction in [0, 1] for partial credit::

    from minigpt.reference import functional as F
    from minigpt.testing.checkers import check_softmax
    from minigpt.testing.grader.grading import Assignment

    hw = Assignment("hw1")
    hw.task("softmax", reference=F.softmax).check("matches the reference", 3, check_softmax).check(
        "rows sum to one", 1, lambda f: None if abs(f(np.ones((2, 3))).sum() - 2) < 1e-9 else 0.0, hidden=True
    )

``minigpt grade submission.ipynb --assignment hw1.py:hw`` then runs the submission in a worker process and
scores it here, in the grader: a check receives a stand-in for the student's function whose calls the worker
answers (``minigpt.testing.grader.session``), so the inputs, the expected values, the comparison and the score
never depend on anything the student's code can reach. While a task is graded the other tasks' functions are
replaced, in the worker, by their ``reference`` (when one is given), so one mistake costs points once, in its own
task. Inputs are seeded by student id (``student_seed``), and a failure never shows the expected value.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minigpt.testing import context
from minigpt.testing.grader.session import RemoteFunction, Session, WorkerStopped
from minigpt.testing.grader.timelimit import TimeLimitExceeded

CheckFn = Callable[[Callable[..., Any]], Any]


@dataclass(frozen=True)
class Check:
    name: str
    points: float
    run: CheckFn
    hidden: bool = False


@dataclass
class Task:
    """One function the student writes (``function``) and the checks that score it."""

    function: str
    name: str = ""
    reference: Callable[..., Any] | None = None  # stands in for ``function`` while other tasks are graded
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or self.function

    def check(self, name: str, points: float, run: CheckFn, *, hidden: bool = False) -> Task:
        """Add a check worth ``points``; returns the task, so checks chain."""
        if not (isinstance(points, (int, float)) and math.isfinite(points) and points > 0):
            raise ValueError(f"check {name!r}: points must be a positive number, got {points!r}")
        if any(c.name == name for c in self.checks):
            raise ValueError(f"task {self.name!r} already has a check named {name!r}; give each check its own name")
        self.checks.append(Check(name, float(points), run, hidden))
        return self

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)


@dataclass
class Assignment:
    """A named list of tasks. ``allow``: minigpt modules the student may call besides the plumbing."""

    name: str
    tasks: list[Task] = field(default_factory=list)
    allow: tuple[str, ...] = ()

    def task(self, function: str, *, name: str = "", reference: Callable[..., Any] | None = None) -> Task:
        """Declare a task graded on the submission's ``function``; add its checks with ``.check(...)``."""
        task = Task(function, name, reference)
        if any(t.name == task.name for t in self.tasks):
            raise ValueError(f"assignment {self.name!r} already has a task named {task.name!r}")
        self.tasks.append(task)
        return task

    @property
    def max_points(self) -> float:
        return sum(t.max_points for t in self.tasks)


@dataclass
class CheckResult:
    task: str
    check: str
    score: float
    max_score: float
    output: str
    hidden: bool = False
    status: str = "passed"  # passed | partial | failed | timeout | not-run


def student_seed(student_id: str, assignment: str, task: str, check: str) -> int:
    """The inputs' seed for one student and check: the same id gets the same inputs, another id others."""
    digest = hashlib.sha256("\x1f".join((student_id, assignment, task, check)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


def stand_in(reference: Callable[..., Any]) -> Callable[..., Any]:
    """``reference`` under a wrapper defined here (in the worker), so the student's code calling it while another
    task is graded is not a call into the reference."""

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        return reference(*args, **kwargs)

    return stand_in


def _fraction(value: Any) -> float:
    if value is None or value is True:
        return 1.0
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise TypeError(f"a check returns None, True or a fraction in [0, 1], got {value!r}")


def _zero(task: Task, why: str, status: str = "failed") -> list[CheckResult]:
    return [CheckResult(task.name, c.name, 0.0, c.points, why, c.hidden, status) for c in task.checks]


def grade_task(
    assignment: Assignment,
    task: Task,
    session: Session,
    *,
    student_id: str = "",
    timeout: float = 60.0,
    timed_out: dict[str, str] | None = None,
    crashed: dict[str, str] | None = None,
    not_own: str = "",
) -> list[CheckResult]:
    """Score ``task`` on the student's function in ``session``'s worker. Runs in the grader: the checks draw the
    inputs, compute the expected values and judge here; the worker only answers calls. ``timed_out`` maps a
    function name to why the cell defining it was stopped (the task then scores 0); ``crashed`` to why it raised
    (said when the function is missing); ``not_own``: why the grader's own look at the source refuses it."""
    if timed_out and task.function in timed_out:
        return _zero(task, timed_out[task.function], "timeout")
    try:
        seen = session.request({"op": "task", "function": task.function}, timeout)
    except WorkerStopped as e:
        return _zero(task, f"not graded: {e}.", "not-run")
    if seen.get("defined") is not True:
        why = f"your submission does not define `{task.function}`; write a function of that name."
        if crashed and task.function in crashed:
            why = f"`{task.function}` is not defined: {crashed[task.function]}"
        return _zero(task, why)
    own, uses = seen.get("own"), seen.get("uses")
    if not (own is None or isinstance(own, str)) or not isinstance(uses, list):
        return _zero(task, "the grading process gave no readable answer about your function, so it scores 0.")
    if uses:
        own = own or (
            f"`{task.function}` uses {', '.join(map(str, uses))}; this task asks you to implement it yourself, "
            "without minigpt's own implementation — so it scores 0."
        )
    if own or not_own:
        return _zero(task, own or not_own)
    results: list[CheckResult] = []
    for check in task.checks:
        if results and results[-1].status in ("timeout", "not-run"):
            why = (
                "not run: an earlier check of this task did not finish in time."
                if results[-1].status == "timeout"
                else results[-1].output
            )
            results.append(CheckResult(task.name, check.name, 0.0, check.points, why, check.hidden, "not-run"))
            continue
        results.append(_run_check(assignment, task, check, session, student_id, timeout))
    return results


def _run_check(
    assignment: Assignment, task: Task, check: Check, session: Session, student_id: str, timeout: float
) -> CheckResult:
    seed = student_seed(student_id, assignment.name, task.name, check.name)

    def result(fraction: float, output: str, status: str) -> CheckResult:
        return CheckResult(task.name, check.name, fraction * check.points, check.points, output, check.hidden, status)

    session.suspicious.clear()
    fn = RemoteFunction(session, task.function, time.monotonic() + timeout)
    try:
        with context.grading(seed):
            fraction = _fraction(check.run(fn))
    except TimeLimitExceeded:
        return result(0.0, f"your function did not return within {timeout:g} s (an endless loop?).", "timeout")
    except WorkerStopped as e:
        return result(0.0, f"not graded: {e}.", "not-run")
    except AssertionError as e:
        return result(0.0, str(e) or "the check failed.", "failed")
    except Exception as e:  # noqa: BLE001 - a check that cannot run on this submission fails, readably
        return result(0.0, f"{task.function}: your function raised {type(e).__name__}: {e}", "failed")
    if session.stopped:
        return result(0.0, f"not graded: {session.stopped}.", "not-run")
    if session.suspicious:
        used = ", ".join(sorted(set(session.suspicious)))
        why = f"`{task.function}` called {used}; this task asks you to implement it yourself — so it scores 0."
        return result(0.0, why, "failed")
    if fraction == 1.0:
        return result(1.0, "passed", "passed")
    return result(fraction, f"partial credit: {fraction:.0%} of this check", "partial")


@dataclass
class UnitResult:
    label: str  # "cell 3" or "line 12"
    status: str  # ok | error | timeout
    message: str = ""


@dataclass
class Report:
    """Everything one grading run found: per-check scores, and how each cell or statement ran."""

    assignment: str
    student_id: str
    checks: list[CheckResult] = field(default_factory=list)
    units: list[UnitResult] = field(default_factory=list)
    error: str = ""  # set when grading itself stopped early (the submission killed its process, …)

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)

    def task_scores(self) -> dict[str, tuple[float, float]]:
        """task → (score, max score), in the assignment's order."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.checks:
            got, top = out.get(c.task, (0.0, 0.0))
            out[c.task] = (got + c.score, top + c.max_score)
        return out
