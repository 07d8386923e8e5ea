"""``assign(source, out_dir)``: the student notebook of one exercise source, written only once the grader agrees.

Before anything is written, ``minigpt grade``'s machinery (``minigpt.testing.grader.runner.grade``) scores the
source — its solutions must earn every point, hidden checks included — and the generated student notebook,
whose stubs must earn none. An exercise that fails either is not released.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import minigpt
from minigpt.course.markers import MarkerError, dumps, student_notebook
from minigpt.testing.assignments import ALIASES, ASSIGNMENTS
from minigpt.testing.grader.grading import Report
from minigpt.testing.grader.runner import grade

REPO = Path(minigpt.__file__).resolve().parents[1]
EXERCISES = REPO / "notebooks" / "exercises"  # the committed student notebooks
SOURCES = EXERCISES / "solutions"  # their sources: the solution notebooks, with markers


class AssignError(ValueError):
    """The exercise cannot be released; the message says why and what to fix."""


@dataclass(frozen=True)
class Released:
    """What ``assign`` wrote, and the two grading runs that allowed it (None when not verified)."""

    notebook: Path
    assignment: str
    solution: Report | None
    stub: Report | None


def find_source(spec: str | Path) -> Path:
    """A source notebook: a path, or a shipped exercise's name (``01_attention``, or an old one: ``09_lora``)."""
    path = Path(spec)
    if path.suffix == ".ipynb":
        if not path.is_file():
            raise AssignError(f"no such source notebook: {path}; give an .ipynb with ### BEGIN SOLUTION markers")
        return path
    name = ALIASES.get(str(spec), str(spec))
    if name in ASSIGNMENTS and (SOURCES / f"{name}.ipynb").is_file():
        return SOURCES / f"{name}.ipynb"
    shipped = ", ".join(sorted(p.stem for p in SOURCES.glob("*.ipynb"))) or "none found in this installation"
    raise AssignError(f"unknown exercise {str(spec)!r}: give a source .ipynb or one of {shipped}")


def read_source(path: Path) -> dict[str, Any]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb.get("cells"), list):
            raise TypeError("no list of cells")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError) as e:
        raise AssignError(f"{path} is not a readable notebook ({e}); save it from Jupyter again") from e
    return nb


def assignment_of(nb: dict[str, Any], path: Path, given: str | None = None) -> str:
    """The assignment that grades the source: ``given``, else its ``metadata.minigpt.assignment``."""
    meta = nb.get("metadata", {}).get("minigpt", {})
    name = given or (meta.get("assignment") if isinstance(meta, dict) else None)
    if not isinstance(name, str) or not name:
        raise AssignError(
            f"{path.name} names no assignment: set its metadata minigpt.assignment or pass --assignment NAME"
        )
    return name


def _first_problem(report: Report, want_full: bool) -> str:
    if report.error:
        return report.error.splitlines()[0]
    for c in report.checks:
        if (c.score < c.max_score) if want_full else (c.score > 0):
            return f"{c.task}: {c.check} — {c.output.splitlines()[0] if c.output else c.status}"
    return "no checks were scored"


def verify(source: Path, student: dict[str, Any], assignment: str, *, timeout: float = 60.0) -> tuple[Report, Report]:
    """Grade the source (must score full marks) and the student notebook (must score 0); raise if not."""
    solution = grade(source, assignment=assignment, student_id="assign", timeout=timeout)
    if solution.max_score <= 0 or solution.score < solution.max_score:
        raise AssignError(
            f"the solution in {source.name} scores {solution.score:g} / {solution.max_score:g}, not full marks "
            f"({_first_problem(solution, True)}); fix the solution or the checks before releasing"
        )
    with tempfile.TemporaryDirectory(prefix="minigpt-assign-") as tmp:
        path = Path(tmp) / source.name
        path.write_text(dumps(student), encoding="utf-8")
        stub = grade(path, assignment=assignment, student_id="assign", timeout=timeout)
    if stub.score > 0:
        raise AssignError(
            f"the student notebook made from {source.name} scores {stub.score:g} / {stub.max_score:g} with its stubs "
            f"({_first_problem(stub, False)}); a check passes without the solution — mark more of it"
        )
    return solution, stub


def assign(
    source: str | Path,
    out_dir: str | Path,
    *,
    assignment: str | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> Released:
    """Write ``out_dir/<source name>.ipynb``, the student notebook of ``source``; with ``check``, only after
    ``verify`` passed."""
    path = find_source(source)
    out = Path(out_dir)
    nb = read_source(path)
    name = assignment_of(nb, path, assignment)
    try:
        student = student_notebook(nb, path.parent, out, path.name)
    except MarkerError as e:
        raise AssignError(str(e)) from e
    reports = verify(path, student, name, timeout=timeout) if check else (None, None)
    target = out / path.name
    if target.resolve() == path.resolve():
        raise AssignError(f"--out {out} would overwrite the source {path}; write the student notebook elsewhere")
    try:
        out.mkdir(parents=True, exist_ok=True)
        target.write_text(dumps(student), encoding="utf-8")
    except OSError as e:
        raise AssignError(f"cannot write {target} ({e}); pass a writable --out DIR") from e
    return Released(target, name, *reports)
