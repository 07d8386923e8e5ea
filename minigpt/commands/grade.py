"""``minigpt grade SUBMISSION`` — score a student's notebook or script against a graded assignment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minigpt.testing.assignments import AssignmentError
from minigpt.testing.grader.reports import GRADESCOPE_VISIBILITIES, to_gradescope, to_json, to_text
from minigpt.testing.grader.runner import grade
from minigpt.testing.grader.submission import SubmissionError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minigpt grade",
        description="Run a submission (.ipynb or .py) in its own process and score each task, with diagnoses.",
    )
    p.add_argument("submission", help="the student's notebook or Python file")
    p.add_argument("--assignment", help="NN_topic, FILE.py[:VARIABLE] or module[:VARIABLE] (default: from the file)")
    p.add_argument("--student-id", default="", help="seeds the inputs: each id gets its own, the same id the same")
    p.add_argument("--format", choices=("text", "json", "gradescope"), default="text")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per cell and per check (default 60)")
    p.add_argument("--out", help="directory for the output file (gradescope: results.json, default: here)")
    p.add_argument("--instructor", action="store_true", help="text/json: show hidden checks too")
    p.add_argument(
        "--hidden-visibility", choices=GRADESCOPE_VISIBILITIES, default="hidden", help="gradescope: for hidden checks"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        report = grade(args.submission, assignment=args.assignment, student_id=args.student_id, timeout=args.timeout)
    except (SubmissionError, AssignmentError) as e:
        print(f"minigpt grade: {e}", file=sys.stderr)
        return 2
    if args.format == "text":
        text, name = to_text(report, instructor=args.instructor), "grade.txt"
    elif args.format == "json":
        text, name = json.dumps(to_json(report, instructor=args.instructor), ensure_ascii=False, indent=1), "grade.json"
    else:
        data = to_gradescope(report, hidden_visibility=args.hidden_visibility)
        text, name = json.dumps(data, ensure_ascii=False, indent=1), "results.json"
    if args.format == "gradescope" or args.out:
        out = Path(args.out or ".")
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text, encoding="utf-8")
        except OSError as e:
            print(f"minigpt grade: cannot write {out / name} ({e}); pass a writable --out DIR", file=sys.stderr)
            return 2
        print(f"{report.assignment}: {report.score:g} / {report.max_score:g} points, written to {out / name}")
    else:
        print(text)
    return 0
