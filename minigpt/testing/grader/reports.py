"""A grading ``Report`` written for its readers: text for a terminal, JSON for scripts, and Gradescope's
``results.json``. Students never see a hidden check's name, output or score; instructors see everything."""

from __future__ import annotations

import dataclasses
from typing import Any

from minigpt.testing.grader.grading import CheckResult, Report

GRADESCOPE_VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
_MARK = {"passed": "✓", "partial": "~", "failed": "✗", "timeout": "⧗", "not-run": "-"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def _shown(report: Report, instructor: bool) -> list[CheckResult]:
    return [c for c in report.checks if instructor or not c.hidden]


def to_text(report: Report, *, instructor: bool = False) -> str:
    """One block per task: each check's points and, when it lost points, the checker's diagnosis."""
    lines = [f"{report.assignment}" + (f" — {report.student_id}" if report.student_id else "")]
    for task in report.task_scores():
        checks = [c for c in report.checks if c.task == task]
        visible = [c for c in checks if instructor or not c.hidden]
        shown_score = sum(c.score for c in visible)
        shown_top = sum(c.max_score for c in visible)
        lines.append(f"\n{task}: {_fmt(shown_score)} / {_fmt(shown_top)}")
        for c in visible:
            tag = " (hidden)" if c.hidden else ""
            lines.append(f"  [{_MARK.get(c.status, '?')}] {c.check}{tag}: {_fmt(c.score)} / {_fmt(c.max_score)}")
            if c.status != "passed":
                lines.extend("      " + line for line in c.output.splitlines())
        hidden = [c for c in checks if c.hidden and not instructor]
        if hidden:
            points = sum(c.max_score for c in hidden)
            lines.append(f"  + {len(hidden)} hidden check(s) worth {_fmt(points)} point(s), scored by your instructor")
    problems = [u for u in report.units if u.status != "ok"]
    if problems:
        lines.append("\nYour code:")
        lines.extend(f"  {u.message}" for u in problems)
    if report.error:
        lines.append(f"\nGrading stopped early: {report.error}")
    checks = _shown(report, instructor)
    total = f"\nScore: {_fmt(sum(c.score for c in checks))} / {_fmt(sum(c.max_score for c in checks))}"
    if not instructor and len(checks) < len(report.checks):
        total += " (visible checks; hidden ones are not shown)"
    lines.append(total)
    return "\n".join(lines) + "\n"


def to_json(report: Report, *, instructor: bool = False) -> dict[str, Any]:
    """The report as plain data; for students without the hidden checks."""
    checks = _shown(report, instructor)
    tasks = []
    for task in report.task_scores():
        mine = [c for c in checks if c.task == task]
        tasks.append(
            {
                "name": task,
                "score": sum(c.score for c in mine),
                "max_score": sum(c.max_score for c in mine),
                "checks": [
                    {k: v for k, v in dataclasses.asdict(c).items() if k != "task" and (instructor or k != "hidden")}
                    for c in mine
                ],
            }
        )
    return {
        "assignment": report.assignment,
        "student_id": report.student_id,
        "score": sum(c.score for c in checks),
        "max_score": sum(c.max_score for c in checks),
        "hidden_checks": sum(c.hidden for c in report.checks) if not instructor else 0,
        "tasks": tasks,
        "cells": [dataclasses.asdict(u) for u in report.units],
        "error": report.error,
    }


def to_gradescope(report: Report, *, hidden_visibility: str = "hidden") -> dict[str, Any]:
    """Gradescope's autograder ``results.json``: one test per check; hidden checks carry ``hidden_visibility``."""
    if hidden_visibility not in GRADESCOPE_VISIBILITIES:
        raise ValueError(f"hidden visibility must be one of {', '.join(GRADESCOPE_VISIBILITIES)}")
    tests = [
        {
            "name": f"{c.task}: {c.check}",
            "score": c.score,
            "max_score": c.max_score,
            "status": "passed" if c.status == "passed" else "failed",
            "output": c.output,
            "visibility": hidden_visibility if c.hidden else "visible",
        }
        for c in report.checks
    ]
    notes = [u.message for u in report.units if u.status != "ok"] + ([report.error] if report.error else [])
    return {
        "score": report.score,
        "output": "\n".join(notes) if notes else "All cells ran.",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
