"""Grade a submission in a separate process: ``grade(path, ...)`` → ``Report``.

The worker runs each cell (or top-level statement) and each check under ``timeout`` seconds; this side adds
a limit for the whole run, so even a submission that blocks the alarm or kills its process gets a report:
what was scored before stays, the rest scores 0 with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import minigpt
from minigpt.testing.assignments import ASSIGNMENTS, load_assignment
from minigpt.testing.grader.grading import CheckResult, Report, UnitResult
from minigpt.testing.grader.submission import SubmissionError, assignment_hint, load_units


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
) -> Report:
    """Run ``submission`` (.ipynb or .py) in a fresh Python process and score it."""
    if not timeout > 0:
        raise SubmissionError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    path = Path(submission).resolve()
    units = load_units(path)
    spec = resolve_assignment(path, assignment)
    declared = load_assignment(spec)  # fails here, readably, before a process is started
    n_checks = sum(len(t.checks) for t in declared.tasks)
    budget = timeout * (len(units) + n_checks) + 60.0
    env = dict(os.environ)
    root = str(Path(minigpt.__file__).resolve().parents[1])  # the worker imports this very minigpt
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    report = Report(declared.name, student_id)
    with tempfile.TemporaryDirectory(prefix="minigpt-grade-") as tmp:
        results = Path(tmp) / "results.jsonl"
        command = [sys.executable, "-m", "minigpt.testing.grader.worker", str(path), "--assignment", spec]
        command += ["--student-id", student_id, "--timeout", str(timeout), "--results", str(results)]
        try:
            proc = subprocess.run(
                command, cwd=path.parent, env=env, capture_output=True, text=True, timeout=budget, check=False
            )
            tail = (proc.stdout + proc.stderr)[-1500:]
            stopped = "" if proc.returncode == 0 else f"the grading process exited with code {proc.returncode}"
        except subprocess.TimeoutExpired:
            tail, stopped = "", f"the whole submission ran past the grader's limit of {budget:g} s and was stopped"
        lines = results.read_text(encoding="utf-8").splitlines() if results.exists() else []
    done = False
    for line in lines:
        record = json.loads(line)
        kind = record.pop("kind")
        if kind == "unit":
            report.units.append(UnitResult(**record))
        elif kind == "check":
            report.checks.append(CheckResult(**record))
        done = done or kind == "done"
    if not done:
        report.error = stopped or "the grading process stopped before it finished"
        if tail.strip():
            report.error += f"; its last output:\n{tail.strip()}"
        scored = {(c.task, c.check) for c in report.checks}
        for task in declared.tasks:
            for check in task.checks:
                if (task.name, check.name) not in scored:
                    why = f"not graded: {stopped or 'the grading process stopped'}."
                    report.checks.append(
                        CheckResult(task.name, check.name, 0.0, check.points, why, check.hidden, "not-run")
                    )
    return report
