"""Is a graded function the student's own work? Two independent looks, so that renaming an import or building
its name at run time does not get past both:

- statically, the code objects of the function (and of the submission's helpers it refers to) are searched
  for names bound to ``minigpt.reference``, the JAX model, decoding, the apps — anything of minigpt that
  computes what a task asks for;
- dynamically, while the grader calls the function, a profile hook (in every thread) records every call into one
  of those modules made from code outside the minigpt package: the submission's own code, code it built with
  ``eval``/``exec``, a thread or pool it started. The hook reports whether it was still in place at the end, so
  code that removes it is seen as such.

Both run in the worker, beside the student's code, so their verdict is only evidence: the grader gives no
points unless the worker answers, and it also looks at the submission's source itself
(``minigpt.testing.grader.static``).

The allowed part of minigpt is its plumbing: configs, the parameter layout, input checks, tokenizers and
``minigpt.testing`` itself (whose helpers the checks hand to the student, e.g. a model's logits function).
"""

from __future__ import annotations

import inspect
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SUBMISSION = "<submission"  # every code object compiled from a submission has a filename starting so
ALLOWED = ("minigpt.config", "minigpt.params", "minigpt.validation", "minigpt.tokenizers", "minigpt.testing")
# inside minigpt.testing, what computes answers: the checkers' own formulas and the assignments' references
NOT_ALLOWED = ("minigpt.testing.checks", "minigpt.testing.checkers", "minigpt.testing.assignments")
_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # minigpt/, from minigpt/testing/grader/provenance.py


def is_submission_code(filename: str) -> bool:
    return filename.startswith(SUBMISSION)


def forbidden_module(name: str, allow: Iterable[str] = ()) -> bool:
    """Whether code of module ``name`` may not stand in for a student's work (the package root is plumbing)."""
    if name != "minigpt" and not name.startswith("minigpt."):
        return False
    if name == "minigpt":
        return False
    if any(name == n or name.startswith(n + ".") for n in NOT_ALLOWED):
        return True
    return not any(name == a or name.startswith(a + ".") for a in (*ALLOWED, *allow))


def module_of_file(filename: str) -> str | None:
    """``minigpt.reference.functional`` for …/minigpt/reference/functional.py; None outside the package."""
    try:
        rel = Path(filename).resolve().relative_to(_PACKAGE_DIR)
    except (ValueError, OSError):
        return None
    parts = [*rel.parts[:-1], rel.stem] if rel.stem != "__init__" else list(rel.parts[:-1])
    return ".".join(["minigpt", *parts])


def _origin(value: Any) -> str:
    if isinstance(value, types.ModuleType):
        return value.__name__
    module = getattr(value, "__module__", None)
    if not isinstance(module, str):
        module = type(value).__module__
    return module or ""


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def not_own_code(name: str, fn: Any) -> str | None:
    """Why ``fn`` is not a function written in the submission, or None if it is."""
    target = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(target, "__code__", None)
    if code is None:
        return f"`{name}` must be a function you write in your submission; it is a {type(fn).__name__}."
    if not is_submission_code(code.co_filename):
        where = f"{_origin(target)}.{getattr(target, '__qualname__', name)}"
        return f"`{name}` is {where}, not code written in your submission: implement it yourself."
    return None


def static_uses(fn: Callable, *, allow: Iterable[str] = (), skip: Iterable[str] = ()) -> list[str]:
    """What forbidden minigpt code ``fn`` (or a submission helper it names, except those in ``skip``) refers to."""
    allow, skip = tuple(allow), set(skip)
    found: list[str] = []
    seen: set[int] = set()

    def visit(f: Any) -> None:
        f = inspect.unwrap(f)
        code = getattr(f, "__code__", None)
        if code is None or id(code) in seen or not is_submission_code(code.co_filename):
            return
        seen.add(id(code))
        names = {n for c in _codes(code) for n in c.co_names}
        env: dict[str, Any] = {}
        glob = getattr(f, "__globals__", {})
        env.update({n: glob[n] for n in names if n in glob})
        for var, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or (), strict=False):
            try:
                env[var] = cell.cell_contents
            except ValueError:  # an empty cell: nothing bound yet
                continue
        for default in (getattr(f, "__defaults__", None) or ()) + tuple(
            (getattr(f, "__kwdefaults__", None) or {}).values()
        ):
            env[f"<default {default!r:.30}>"] = default
        for label, value in env.items():
            if label in skip:
                continue
            origin = _origin(value)
            if forbidden_module(origin, allow):
                found.append(f"`{label}` ({origin})")
            elif isinstance(value, types.ModuleType) and (origin == "minigpt" or origin.startswith("minigpt.")):
                for attr in names:  # e.g. `minigpt.reference.softmax` through the allowed package root
                    sub = f"{origin}.{attr}"
                    member = value.__dict__.get(attr)
                    if (sub in sys.modules and forbidden_module(sub, allow)) or (
                        member is not None and forbidden_module(_origin(member), allow)
                    ):
                        found.append(f"`{label}.{attr}` ({sub})")
            elif callable(value):
                visit(value)

    visit(fn)
    return sorted(set(found))


class Calls(list):
    """The forbidden calls a watch saw (``module.function``); ``intact``: its hook was still installed at the end."""

    intact: bool = True


@contextmanager
def watch_calls(*, allow: Iterable[str] = ()) -> Iterator[Calls]:
    """Record (as ``module.function``) each call into a forbidden minigpt module from code outside minigpt, in this
    thread and in every thread started inside the block."""
    allow = tuple(allow)
    hits = Calls()
    verdict: dict[str, str | None] = {}
    outside: dict[str, bool] = {}

    def forbidden_file(filename: str) -> str | None:
        if filename not in verdict:
            module = module_of_file(filename)
            verdict[filename] = module if module is not None and forbidden_module(module, allow) else None
        return verdict[filename]

    def foreign(filename: str) -> bool:
        # minigpt's own code may call the reference (a stand-in for another task does); anything else may not
        if filename not in outside:
            outside[filename] = module_of_file(filename) is None
        return outside[filename]

    def hook(frame, event, arg):
        if event != "call":
            return
        module = forbidden_file(frame.f_code.co_filename)
        caller = frame.f_back
        if module is not None and (caller is None or foreign(caller.f_code.co_filename)):
            hits.append(f"{module}.{frame.f_code.co_name}")

    previous, previous_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield hits
    finally:
        hits.intact = sys.getprofile() is hook and threading.getprofile() is hook
        sys.setprofile(previous)
        threading.setprofile(previous_threads)
