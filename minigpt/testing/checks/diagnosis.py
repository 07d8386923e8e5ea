"""The machinery every checker shares: run a property on hypothesis-drawn inputs, call the student's function
so that a crash reads as a sentence, and compare an output with the right one, naming a known mistake.

``minigpt.testing.checkers`` and the lesson checkers (``decoding_checkers`` …) are built from these.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from minigpt.testing import context
from minigpt.testing.strategies import seeds

Mistake = tuple[str, Callable[..., Any]]  # (message, what the function returns with that mistake)


_PRINTABLE = 400  # entries: an input array up to this size is printed in full, as code that rebuilds it


def as_code(value: Any) -> str:
    """``value`` as Python source a student can paste to rerun the failing example (NumPy as ``np``)."""
    if isinstance(value, np.ndarray):
        if value.size > _PRINTABLE:
            return f"<an array of shape {value.shape}, too large to print>"
        body = np.array2string(value, separator=", ", threshold=_PRINTABLE + 1, floatmode="unique", max_line_width=110)
        body = re.sub(r"(?<![\w.])(-?)(inf|nan)\b", r"\1np.\2", body)
        dtype = "" if value.dtype in (np.float64, np.int64, np.bool_) else f", dtype=np.{value.dtype.name}"
        return f"np.array({body}{dtype})".replace("\n", "\n    ")
    if isinstance(value, dict):
        items = ",\n    ".join(f"{k!r}: {as_code(v)}".replace("\n", "\n    ") for k, v in value.items())
        return "{\n    " + items + ",\n}" if value else "{}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (np.ndarray, dict)) for v in value):
        inner = ", ".join(as_code(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner},)"
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else f"float({str(value)!r})"
    return repr(value)


def describe(inputs: dict[str, Any]) -> str:
    """The inputs of a failing example as assignments a student can paste and rerun (arrays written out)."""
    return "\n".join("  " + f"{name} = {as_code(value)}".replace("\n", "\n  ") for name, value in inputs.items())


def distinct_digits(a: float, b: float, least: int = 6) -> int:
    """The fewest significant digits (≥ ``least``, ≤ 17) at which ``a`` and ``b`` print differently."""
    for digits in range(least, 18):
        if f"{a:.{digits}g}" != f"{b:.{digits}g}":
            return digits
    return 17


def mismatch(got: np.ndarray, want: np.ndarray, what: str) -> str:
    """Where the output is furthest from the right one; the right value itself only at the student's desk. Both
    are printed with as many digits as it takes to tell them apart."""
    err = np.abs(got - want)
    where = np.unravel_index(np.nanargmax(err), err.shape)
    at = tuple(int(i) for i in where)
    n = distinct_digits(float(got[where]), float(want[where]))
    if context.current().reveal:
        return (
            f"{what}: your output differs from the reference by up to {np.nanmax(err):.3g} "
            f"(at index {at}: yours {got[where]:.{n}g}, expected {want[where]:.{n}g})."
        )
    wrong = int(np.sum(~np.isclose(got, want, rtol=1e-6, atol=1e-9)))
    return (
        f"{what}: your output differs from the reference in {wrong} of {got.size} entries "
        f"(the first at index {at}: yours {got[where]:.{n}g})."
    )


def compare(
    got: Any,
    want: np.ndarray,
    inputs: dict[str, Any],
    mistakes: list[Mistake],
    *,
    what: str,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> None:
    """Raise an AssertionError that names the mistake, or return if ``got`` matches ``want``."""
    smallest = "\nSmallest failing input:\n" + describe(inputs)
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: your output has shape {got.shape}, expected shape {want.shape}.{smallest}")
    if np.issubdtype(got.dtype, np.floating) and np.issubdtype(want.dtype, np.floating) and got.dtype != want.dtype:
        raise AssertionError(
            f"{what}: your output has dtype {got.dtype} for {want.dtype} input; keep the input's dtype "
            f"(use Python floats or math.sqrt for constants).{smallest}"
        )
    if not (np.issubdtype(got.dtype, np.number) or got.dtype == bool):
        raise AssertionError(f"{what}: your output is not numeric (dtype {got.dtype}).{smallest}")
    if want.dtype == bool or got.dtype == bool:
        if np.array_equal(got, want):
            return
        got, want = got.astype(np.float64), want.astype(np.float64)
    elif np.allclose(got, want, rtol=rtol, atol=atol):
        return
    for message, mistake in mistakes:
        with np.errstate(all="ignore"):
            try:
                wrong = np.asarray(mistake())
            except Exception:  # noqa: BLE001 - a mistake that cannot run on this input does not match
                continue
        if wrong.shape == got.shape and not np.allclose(wrong, want, rtol=rtol, atol=atol):
            if np.allclose(got, wrong, rtol=rtol, atol=atol):
                raise AssertionError(f"{what}: {message}{smallest}")
    if np.any(~np.isfinite(got)) and np.all(np.isfinite(want)):
        raise AssertionError(
            f"{what}: your output contains inf/NaN where the right answer is finite — exp() overflowed? "
            f"Subtract the maximum before exponentiating.{smallest}"
        )
    raise AssertionError(mismatch(got, want, what) + smallest)


def call(fn: Callable, what: str, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a crash becomes an AssertionError that names the exception and the input."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - a student's crash becomes a readable failure
        raise AssertionError(
            f"{what}: your function raised {type(e).__name__}: {e}\nOn input:\n{describe(inputs)}"
        ) from e


def run(prop: Callable[[Any], None], strategy: st.SearchStrategy, max_examples: int) -> None:
    """``prop`` on ``max_examples`` drawn inputs, shrinking the first failure; seeded when grading."""
    seeded = context.current().seed
    runner = settings(
        max_examples=max_examples,
        derandomize=seeded is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        report_multiple_bugs=False,
    )(given(strategy)(prop))
    if seeded is not None:
        runner = seed(seeded)(runner)
    runner()


_DRAWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # example → generators drawn in it so far


def _salt(draw: st.DrawFn) -> int:
    """0, 1, 2, … for the successive generators of one example (the example is the object ``draw`` is bound to)."""
    example = getattr(draw, "__self__", None)
    if example is None:
        return 0
    n = _DRAWN.get(example, 0)
    _DRAWN[example] = n + 1
    return n


def generator(draw: st.DrawFn) -> np.random.Generator:
    """A NumPy generator for one drawn input. When grading, the student's seed is mixed in: hypothesis shrinks
    the drawn seed towards 0, and without it every student's smallest failing input would be the same. The
    generator's rank in its example is mixed in too: when every drawn seed has shrunk to 0, two inputs of one
    shape still differ (a parameter equal to its gradient would hide some mistakes behind others)."""
    graded = context.current().seed
    salt = _salt(draw)
    return np.random.default_rng([draw(seeds()), salt] + ([] if graded is None else [graded]))


def arrays(draw: st.DrawFn, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """Standard-normal float64 entries of the given shape, times ``scale``."""
    return generator(draw).standard_normal(shape) * scale
