"""``minigpt book --out DIR`` — the course as a static site: the executed lessons, their exercises, the README."""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minigpt book",
        description=(
            "Build the book: every lesson with its outputs, its exercises, the README as front page; offline "
            "(MathJax is copied in). Lessons are executed unless --executed holds a copy with the same code."
        ),
    )
    p.add_argument("--out", default="build/book", help="the site's folder (default build/book); open index.html")
    p.add_argument("--executed", help="executed lessons to reuse (what MINIGPT_BOOK_EXECUTED=DIR pytest saves)")
    p.add_argument("--only", nargs="+", metavar="LESSON", help="only these lessons, e.g. 01_attention")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per cell when a lesson is executed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from minigpt.course.book import BookError, build

    try:
        pages = build(args.out, executed=args.executed, only=args.only, timeout=args.timeout)
    except BookError as e:
        print(f"minigpt book: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(pages)} pages to {args.out}; open {args.out}/index.html")
    return 0
