"""One source notebook per exercise → the student's notebook.

The source is the solution notebook, with nbgrader's markers (lines of their own, in code cells)::

    def softmax(x):
        ### BEGIN SOLUTION: exponentiate x minus its row max, divide by the row sum
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
        ### END SOLUTION

    check_softmax(softmax)
    ### BEGIN HIDDEN TESTS
    check_graded("01_attention", softmax)
    ### END HIDDEN TESTS

A solution region becomes one line at the marker's indentation, ``raise NotImplementedError("TODO: <hint>")``
(the hint is the text after ``BEGIN SOLUTION:``; without one, "TODO: your code here"); a hidden-tests region is
removed, markers included, and a cell left empty is dropped. Markdown is copied, with relative links re-pointed
from the source's folder to the student notebook's. Outputs are cleared. This is a pure function of the source:
the committed student notebooks are exactly its output (``tests/test_course_assign.py`` regenerates them).
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
DEFAULT_HINT = "your code here"
_LINK = re.compile(r"\]\(([^)\s]+)\)")  # a markdown link's target


class MarkerError(ValueError):
    """The source's markers do not pair up; the message names the cell and line and what to fix."""


def _lines(cell: dict[str, Any]) -> list[str]:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    return text.splitlines(keepends=True)


def _stub(marker_line: str) -> str:
    """``raise NotImplementedError("TODO: hint")`` at the marker's indentation (the hint as a Python literal)."""
    indent = marker_line[: len(marker_line) - len(marker_line.lstrip())]
    hint = marker_line.strip()[len(BEGIN_SOLUTION) :].lstrip(":").strip() or DEFAULT_HINT
    return f"{indent}raise NotImplementedError({json.dumps('TODO: ' + hint, ensure_ascii=False)})\n"


def strip_cell(lines: list[str], where: str) -> tuple[list[str], int]:
    """The student's lines of one code cell, and how many solution regions it had."""
    out: list[str] = []
    region = ""  # "", "solution" or "hidden": the region the current line is in
    start = 0
    solutions = 0
    for number, line in enumerate(lines, 1):
        mark = line.strip()
        opens = mark.startswith(BEGIN_SOLUTION) or mark == BEGIN_HIDDEN
        closes = mark in (END_SOLUTION, END_HIDDEN)
        if opens and region:
            opened = f"the region opened on line {start}"
            raise MarkerError(f"{where}, line {number}: {mark!r} inside {opened}; close it first")
        if mark.startswith(BEGIN_SOLUTION):
            region, start, solutions = "solution", number, solutions + 1
            out.append(_stub(line))
        elif mark == BEGIN_HIDDEN:
            region, start = "hidden", number
        elif closes:
            wanted = {"solution": END_SOLUTION, "hidden": END_HIDDEN}.get(region)
            if mark != wanted:
                opened = f"the region opened on line {start} ends with {wanted!r}" if region else "nothing is open"
                raise MarkerError(f"{where}, line {number}: {mark!r} but {opened}")
            region = ""
        elif not region:
            out.append(line)
    if region:
        closing = END_SOLUTION if region == "solution" else END_HIDDEN
        raise MarkerError(f"{where}: the region opened on line {start} is never closed; add a {closing!r} line")
    if out:
        out[-1] = out[-1].rstrip("\n")  # notebooks store a cell's last line without its newline
    return out, solutions


def _repoint(text: str, source_dir: Path, out_dir: Path) -> str:
    """Relative links that reach a file from the source's folder, rewritten to reach it from ``out_dir``."""

    def fix(match: re.Match[str]) -> str:
        target, _, anchor = match.group(1).partition("#")
        if not target or "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        path = (source_dir / target).resolve()
        if not path.exists():
            return match.group(0)
        new = Path(os.path.relpath(path, out_dir.resolve())).as_posix()
        return f"]({new}{'#' + anchor if anchor else ''})"

    return _LINK.sub(fix, text)


def student_notebook(source: dict[str, Any], source_dir: Path, out_dir: Path, name: str = "source") -> dict[str, Any]:
    """The student's notebook for the source notebook ``source`` (a dict as ``json.load`` reads it)."""
    nb = copy.deepcopy(source)
    cells, solutions = [], 0
    for i, cell in enumerate(nb.get("cells", [])):
        lines = _lines(cell)
        if cell.get("cell_type") == "code":
            lines, found = strip_cell(lines, f"{name}, cell {i}")
            solutions += found
            if not "".join(lines).strip():
                continue  # a cell that held only hidden tests
            cell["outputs"], cell["execution_count"] = [], None
        elif cell.get("cell_type") == "markdown":
            lines = _repoint("".join(lines), source_dir, out_dir).splitlines(keepends=True)
        cell["source"] = lines
        cells.append(cell)
    if not solutions:
        raise MarkerError(
            f"{name} has no {BEGIN_SOLUTION!r} … {END_SOLUTION!r} region: mark the code the student writes"
        )
    nb["cells"] = cells
    return nb


def dumps(nb: dict[str, Any]) -> str:
    """A notebook as nbformat writes it (sorted keys, one-space indent), so a regenerated file diffs cleanly."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
