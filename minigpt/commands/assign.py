"""``minigpt assign SOURCE --out DIR`` — release an exercise: the student notebook from its one source, verified
with the grader first; ``--gradescope`` adds the autograder package."""

from __future__ import annotations

import argparse
import sys

from minigpt.course.assign import AssignError, assign


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minigpt assign",
        description=(
            "Write the student notebook of an exercise source (solutions → TODO stubs, hidden tests removed) after "
            "checking that the solution scores full marks and the stubs score 0."
        ),
    )
    p.add_argument("source", help="a source .ipynb with ### BEGIN SOLUTION markers, or an exercise name (01_attention)")
    p.add_argument("--out", required=True, help="directory for the student notebook (and the Gradescope package)")
    p.add_argument("--assignment", help="the assignment that grades it (default: the source's metadata)")
    p.add_argument("--gradescope", action="store_true", help="also build OUT/NAME/autograder.zip for Gradescope")
    p.add_argument("--no-verify", action="store_true", help="write without grading the solution and the stubs")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per cell and per check when verifying")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.gradescope:
            from minigpt.course.gradescope import package

            released, zip_path = package(args.source, args.out, assignment=args.assignment, check=not args.no_verify)
        else:
            released = assign(args.source, args.out, assignment=args.assignment, check=not args.no_verify)
    except AssignError as e:
        print(f"minigpt assign: {e}", file=sys.stderr)
        return 2
    if released.solution is not None:
        top = released.solution.max_score
        print(f"{released.assignment}: solution {released.solution.score:g} / {top:g}, stubs 0 / {top:g}")
    print(f"wrote {released.notebook}")
    if args.gradescope:
        print(f"wrote {zip_path}")
    return 0
