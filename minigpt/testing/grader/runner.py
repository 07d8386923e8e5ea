"""Grade a submission: ``grade(path, ...)`` → ``Report``.

The student's code runs only in a worker process (``minigpt.testing.grader.worker``), each cell (or top-level
statement) and each call under ``timeout`` seconds. Everything that decides points runs here: the source is read
for forbidden imports (``static``), the checks draw the inputs, compute the expected values and judge the worker's
answers (``grading``). A worker that blocks the alarm, kills itself or answers garbage is stopped; what was
scored before stays, the rest scores 0 with the reason. When grading ends, the worker and every process it
started are killed (``session``).
"""

from __future__ import annotations

from pathlib import Path

from minigpt.testing.assignments import ASSIGNMENTS, load_assignment
from minigpt.testing.grader.grading import CheckResult, Report, UnitResult, grade_task
from minigpt.testing.grader.session import Session, WorkerStopped
from minigpt.testing.grader.static import not_own_source
from minigpt.testing.grader.submission import SubmissionError, Unit, assignment_hint, load_units


def resolve_assignment(submission: str | Path, assignment: str | None) -> str:
    """The assignment to grade against: given, named in the notebook, or the ``NN_topic`` its file starts with."""
    if assignment:
        return assignment
    hint = assignment_hint(submission)
    if hint:
        return hint
    stem = Path(submission).stem
    for name in ASSIGNMENTS:
        if stem == name or stem.startswith(name + "_") or stem.startswith(name + "-"):
            return name
    raise SubmissionError(
        f"cannot tell which assignment {Path(submission).name} is; pass --assignment NAME "
        f"(one of {', '.join(ASSIGNMENTS)}) or FILE.py:VARIABLE"
    )


def grade(
    submission: str | Path,
    *,
    assignment: str | None = None,
    student_id: str = "",
    timeout: float = 60.0,
    memory_mb: int = 4096,
) -> Report:
    """Run ``submission`` (.ipynb or .py) in a fresh worker process and score it here.

    The worker runs the cells and answers calls of the student's functions; the checks, and with them every
    decision about points, run in this process. ``memory_mb`` caps the worker's address space (0: no cap)."""
    if not timeout > 0:
        raise SubmissionError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    path = Path(submission).resolve()
    units = load_units(path)
    spec = resolve_assignment(path, assignment)
    declared = load_assignment(spec)  # fails here, readably, before a process is started
    report = Report(declared.name, student_id)
    session = Session(spec, cwd=path.parent, memory_mb=memory_mb)
    try:
        session.wait_ready()
        timed_out, crashed = _run_units(session, units, timeout, report)
        sources = [u.source for u in units]
        for task in declared.tasks:
            others = [t.function for t in declared.tasks if t is not task and t.reference is not None]
            uses = not_own_source(sources, task.function, allow=declared.allow, skip=others)
            not_own = (
                f"`{task.function}` uses {', '.join(uses)}; this task asks you to implement it yourself, without "
                "minigpt's own implementation — so it scores 0."
                if uses
                else ""
            )
            report.checks += grade_task(
                declared,
                task,
                session,
                student_id=student_id,
                timeout=timeout,
                timed_out=timed_out,
                crashed=crashed,
                not_own=not_own,
            )
    except WorkerStopped:
        pass
    finally:
        session.close()
    if session.stopped:
        report.error = session.stopped
        tail = session.output_tail()
        if tail.strip():
            report.error += f"; its last output:\n{tail.strip()}"
        scored = {(c.task, c.check) for c in report.checks}
        for task in declared.tasks:
            for check in task.checks:
                if (task.name, check.name) not in scored:
                    why = f"not graded: {session.stopped}."
                    report.checks.append(
                        CheckResult(task.name, check.name, 0.0, check.points, why, check.hidden, "not-run")
                    )
    return report


def _run_units(
    session: Session, units: list[Unit], timeout: float, report: Report
) -> tuple[dict[str, str], dict[str, str]]:
    """Run each unit in the worker; which names a stopped or crashed unit was to define, and why."""
    timed_out: dict[str, str] = {}
    crashed: dict[str, str] = {}
    for unit in units:
        request = {"op": "exec", "source": unit.source, "filename": unit.filename, "label": unit.label}
        answer = session.request({**request, "timeout": timeout}, timeout)
        status = answer.get("status") if answer.get("status") in ("ok", "error", "timeout") else "error"
        message = str(answer.get("message", ""))[:2000]
        report.units.append(UnitResult(unit.label, status, message))
        for name in unit.defines:
            if status == "timeout":
                timed_out[name] = f"the {unit.label} that defines `{name}` did not finish within {timeout:g} s."
            elif status == "error":
                error = str(answer.get("error", "")) or message
                crashed[name] = f"the {unit.label} that defines it raised {error[:2000]}"
    return timed_out, crashed
