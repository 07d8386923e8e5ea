"""What the Gradescope package's ``run_autograder`` runs: ``minigpt grade`` on the one submitted notebook.

    python -m minigpt.course.autograder --assignment 01_attention [--root /autograder]

Gradescope puts the student's files in ``ROOT/submission/`` (and who submitted in
``ROOT/submission_metadata.json``) and reads ``ROOT/results/results.json``. The root defaults to
``$AUTOGRADER_ROOT`` or ``/autograder``. Whatever goes wrong — no notebook, two of them, an unreadable file — the
student gets a results.json with score 0 and one line saying what to submit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

from minigpt.commands.grade import main as grade_main
from minigpt.testing.assignments import ALIASES

SUBMITTABLE = (".ipynb", ".py")


def find_submission(folder: Path, assignment: str) -> Path:
    """The submitted notebook (or .py): the only one, or the only one named after the assignment."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix in SUBMITTABLE and "checkpoint" not in p.name
    )
    notebooks = [p for p in files if p.suffix == ".ipynb"] or files
    if len(notebooks) == 1:
        return notebooks[0]
    names = {assignment, *(old for old, new in ALIASES.items() if new == assignment)}
    named = [p for p in notebooks if any(p.stem.startswith(n) for n in names)]
    if len(named) == 1:
        return named[0]
    if not notebooks:
        raise FileNotFoundError(f"no .ipynb or .py file was submitted; upload your {assignment}.ipynb")
    listed = ", ".join(p.name for p in notebooks)
    raise FileNotFoundError(f"submit one notebook, not {len(notebooks)} ({listed}); upload only {assignment}.ipynb")


def student_id(root: Path) -> str:
    """The submitter's Gradescope user id (seeds their inputs), or "" when the metadata is missing."""
    try:
        users = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8")).get("users") or []
        return str(users[0].get("id", "")) if users else ""
    except (OSError, ValueError, AttributeError, IndexError, TypeError):
        return ""


def failed(results: Path, why: str) -> None:
    """A results.json Gradescope accepts, scoring 0 and saying why."""
    results.mkdir(parents=True, exist_ok=True)
    data = {"score": 0.0, "output": why, "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
    (results / "results.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def run(root: Path, assignment: str, timeout: float = 60.0) -> int:
    """Grade ``root/submission`` into ``root/results/results.json``; 0 once the file is written."""
    results = root / "results"
    try:
        submission = find_submission(root / "submission", assignment)
    except FileNotFoundError as e:
        failed(results, str(e))
        return 0
    argv = [str(submission), "--assignment", assignment, "--format", "gradescope", "--out", str(results)]
    argv += ["--student-id", student_id(root), "--timeout", str(timeout)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = grade_main(argv)
    if code != 0:
        failed(results, err.getvalue().strip().removeprefix("minigpt grade: ") or f"grading failed (exit {code})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minigpt.course.autograder")
    p.add_argument("--assignment", required=True)
    p.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    return run(Path(args.root), args.assignment, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
