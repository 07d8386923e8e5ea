"""A submission as the grader sees it: a list of code units (notebook cells, or a script's top-level
statements), each run on its own so that one that never ends or crashes costs only what it defines."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from minigpt.testing.grader.provenance import SUBMISSION

CHECK_TAG = "check"  # cells a student runs to check themselves; the grader runs its own checks instead
_MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)


class SubmissionError(ValueError):
    """The file cannot be graded; the message says why and what to do."""


@dataclass(frozen=True)
class Unit:
    index: int
    source: str
    filename: str  # starts with provenance.SUBMISSION, so the grader can tell the student's code apart
    defines: frozenset[str] = field(default_factory=frozenset)
    label: str = ""


def _defined(tree: ast.AST) -> frozenset[str]:
    names = set()
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return frozenset(names)


def _only_self_checks(tree: ast.Module) -> bool:
    """A cell that only calls check_*(...) (and print): the student's own check, skipped by the grader."""
    calls = [n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    if not tree.body or len(calls) != len(tree.body):
        return False
    names = [c.func.id for c in calls if isinstance(c.func, ast.Name)]
    return (
        len(names) == len(calls)
        and any(n.startswith("check_") for n in names)
        and all(n.startswith("check_") or n == "print" for n in names)
    )


def _check_cells(path: Path, cells: object) -> None:
    """Refuse, in one line, a notebook whose cells are not what Jupyter writes (``{"cells": 5}``, ``[5]``, …)."""

    def bad(what: str) -> SubmissionError:
        return SubmissionError(f"{path} is not a readable Jupyter notebook ({what}); save it from Jupyter again")

    if not isinstance(cells, list):
        raise bad(f'"cells" is a {type(cells).__name__}, not a list of cells')
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise bad(f"cell {i} is a {type(cell).__name__}, not an object")
        source, metadata = cell.get("source", ""), cell.get("metadata", {})
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(x, str) for x in source))):
            raise bad(f"the source of cell {i} is neither text nor a list of lines")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("tags", []), list):
            raise bad(f"the metadata of cell {i} is not an object with a list of tags")


def _notebook_units(path: Path) -> list[Unit]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise SubmissionError(f"{path} is not a readable Jupyter notebook ({e}); save it from Jupyter again") from e
    _check_cells(path, cells)
    units = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or CHECK_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        source = _MAGIC.sub(r"\1pass  # \2", source)  # IPython magics and shell lines do not grade
        try:
            tree = ast.parse(source)
        except SyntaxError:
            units.append(Unit(i, source, f"{SUBMISSION} cell {i}>", frozenset(), f"cell {i}"))
            continue
        if not _only_self_checks(tree):
            units.append(Unit(i, source, f"{SUBMISSION} cell {i}>", _defined(tree), f"cell {i}"))
    return units


def _script_units(path: Path) -> list[Unit]:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SubmissionError(f"cannot read {path} as UTF-8 text ({e})") from e
    filename = f"{SUBMISSION} {path.name}>"
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        return [Unit(0, source, filename, frozenset(), f"line {e.lineno}")]
    units, lines = [], source.splitlines()
    for node in tree.body:  # one unit per top-level statement: a stray endless loop costs only itself
        module = ast.Module([node], type_ignores=[])
        if _only_self_checks(module):
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        segment = "\n" * (first - 1) + "\n".join(lines[first - 1 : node.end_lineno])  # keeps line numbers
        units.append(Unit(first, segment, filename, _defined(module), f"line {first}"))
    return units


def load_units(path: str | Path) -> list[Unit]:
    """The code units of a .ipynb or .py submission, in order."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"no such file: {path}; give the path of a .ipynb or .py submission")
    if path.suffix == ".ipynb":
        return _notebook_units(path)
    if path.suffix == ".py":
        return _script_units(path)
    raise SubmissionError(f"{path.name}: the grader reads .ipynb notebooks or .py files, not {path.suffix or 'this'}")


def assignment_hint(path: str | Path) -> str | None:
    """The assignment a submission names: notebook metadata ``minigpt.assignment``, else a file name starting
    ``NN_topic`` (``01_attention_alice.ipynb`` → ``01_attention``) is matched by the caller."""
    path = Path(path)
    if path.suffix == ".ipynb":
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return None
        if not isinstance(meta, dict):
            return None
        name = meta.get("minigpt", {}).get("assignment") if isinstance(meta.get("minigpt"), dict) else None
        if isinstance(name, str):
            return name
    return None
