"""The grading process: runs a submission's units one by one under a time limit, then scores every task.

Started by ``minigpt.testing.grader.runner`` as ``python -m minigpt.testing.grader.worker``; it writes one JSON object
per line to the results file as it goes, so whatever was scored survives if the submission kills the process.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import json
import sys
import traceback
from typing import IO

from minigpt.testing.assignments import load_assignment
from minigpt.testing.grader.grading import grade_task
from minigpt.testing.grader.submission import load_units
from minigpt.testing.grader.timelimit import TimeLimitExceeded, time_limit


def _short_traceback(e: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith("<submission")]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{where}"


def _emit(out: IO[str], kind: str, **fields: object) -> None:
    out.write(json.dumps({"kind": kind, **fields}, ensure_ascii=False) + "\n")
    out.flush()


def run(submission: str, assignment_spec: str, student_id: str, timeout: float, out: IO[str]) -> None:
    assignment = load_assignment(assignment_spec)
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins}
    timed_out: dict[str, str] = {}
    crashed: dict[str, str] = {}
    for unit in load_units(submission):
        status, message = "ok", ""
        try:
            code = compile(unit.source, unit.filename, "exec")
            with time_limit(timeout):
                exec(code, namespace)  # noqa: S102 - running the submission is the point, in its own process
        except TimeLimitExceeded:
            status, message = "timeout", f"{unit.label} was stopped after {timeout:g} s (an endless loop?)"
            for name in unit.defines:
                timed_out[name] = f"the {unit.label} that defines `{name}` did not finish within {timeout:g} s."
        except BaseException as e:  # noqa: BLE001 - SystemExit and friends from a submission are its errors too
            status, message = "error", f"{unit.label} raised {_short_traceback(e)}"
            for name in unit.defines:
                crashed[name] = f"the {unit.label} that defines it raised {_short_traceback(e)}"
        _emit(out, "unit", label=unit.label, status=status, message=message)
    for task in assignment.tasks:
        for result in grade_task(
            assignment, task, namespace, student_id=student_id, timeout=timeout, timed_out=timed_out, crashed=crashed
        ):
            _emit(out, "check", **dataclasses.asdict(result))
    _emit(out, "done")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minigpt.testing.grader.worker")
    p.add_argument("submission")
    p.add_argument("--assignment", required=True)
    p.add_argument("--student-id", default="")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--results", required=True)
    args = p.parse_args(argv)
    with open(args.results, "a", encoding="utf-8") as out:
        run(args.submission, args.assignment, args.student_id, args.timeout, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
