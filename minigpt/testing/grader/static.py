"""The grader's own look at the submission's source, which no code the student runs can change.

The worker's provenance checks see the live functions, but they run beside the student's code, which may switch
them off. This module reads the source in the grader: the task's function, and every function, class or
top-level value of the submission it names (transitively), must not name a forbidden minigpt module — through an
import (``from minigpt.reference import functional as F`` … ``F.softmax``), an attribute chain
(``minigpt.reference.softmax``), a string (``importlib.import_module("minigpt.reference")``, ``eval("…")``) or an
import inside the function. The other tasks' functions are skipped: the reference stands in for them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

from minigpt.testing.grader.provenance import forbidden_module

_DOTTED = re.compile(r"minigpt(?:\.\w+)+")


def _forbidden(dotted: str, allow: tuple[str, ...]) -> str | None:
    """The first prefix of ``a.b.c`` that is a forbidden minigpt module, or None."""
    parts = dotted.split(".")
    for i in range(2, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if forbidden_module(prefix, allow):
            return prefix
    return None


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"], or None when the chain does not start at a name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return [node.id, *reversed(attrs)] if isinstance(node, ast.Name) else None


def _imports(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """Name bound → the dotted path it stands for."""
    bound = {}
    for alias in node.names:
        if isinstance(node, ast.Import):
            if alias.asname:
                bound[alias.asname] = alias.name
            else:
                bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif node.module and not node.level:
            bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


class _Source:
    def __init__(self, sources: Iterable[str]):
        self.imports: dict[str, str] = {}
        self.defs: dict[str, list[ast.AST]] = {}
        for source in sources:
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    self.imports.update(_imports(node))
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.defs.setdefault(node.name, []).append(node)
                elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        for name in ast.walk(target):
                            if isinstance(name, ast.Name):
                                self.defs.setdefault(name.id, []).append(node)
                else:  # a loop, a with or an if at top level may bind names too: look at all of it
                    for inner in ast.walk(node):
                        if isinstance(inner, (ast.Import, ast.ImportFrom)):
                            self.imports.update(_imports(inner))


def not_own_source(
    sources: Iterable[str], function: str, *, allow: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[str]:
    """What forbidden minigpt code the submission's ``function`` (or what it names) refers to, as readable names."""
    allow, skip = tuple(allow), set(skip)
    src = _Source(sources)
    found: list[str] = []
    seen: set[str] = set()
    todo = [function]
    while todo:
        name = todo.pop()
        if name in seen or (name in skip and name != function):
            continue
        seen.add(name)
        if name in src.imports and name != function:
            module = _forbidden(src.imports[name], allow)
            if module:
                found.append(f"`{name}` ({module})")
            continue
        for node in src.defs.get(name, []):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    for bound, dotted in _imports(inner).items():
                        module = _forbidden(dotted, allow)
                        if module:
                            found.append(f"`{bound}` ({module})")
                elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    for dotted in _DOTTED.findall(inner.value):
                        module = _forbidden(dotted, allow)
                        if module:
                            found.append(f"the string {dotted!r} ({module})")
                elif isinstance(inner, ast.Attribute):
                    chain = _chain(inner)
                    if chain and chain[0] in src.imports and not _forbidden(src.imports[chain[0]], allow):
                        module = _forbidden(".".join([src.imports[chain[0]], *chain[1:]]), allow)
                        if module:
                            found.append(f"`{'.'.join(chain)}` ({module})")
                elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load):
                    todo.append(inner.id)
    return sorted(set(found))
