"""Checking a hand-written gradient: finite differences of the forward, and a comparison that names shape
mistakes first and, for an unexplained mismatch, shows what finite differences give (``checks.backprop``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minigpt.testing import context
from minigpt.testing.checks.diagnosis import Mistake, compare, describe


def finite_differences(f: Callable[..., np.ndarray], args: list, wrt: int, dy: np.ndarray, eps: float = 1e-6):
    """∂L/∂args[wrt] for L = Σ dy ⊙ f(*args), entry by entry: (L(a + εe_i) − L(a − εe_i)) / 2ε (float64)."""
    a = args[wrt]
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        vals = []
        for sign in (1.0, -1.0):
            bumped = a.copy()
            bumped[i] += sign * eps
            vals.append(float(np.sum(dy * f(*args[:wrt], bumped, *args[wrt + 1 :]))))
        grad[i] = (vals[0] - vals[1]) / (2 * eps)
    return grad


def compare_grad(
    got: Any,
    want: np.ndarray,
    fd: np.ndarray,
    inputs: dict[str, Any],
    mistakes: list[Mistake],
    *,
    what: str,
    shape_hints: list[tuple[tuple[int, ...], str]] = (),
) -> None:
    """``compare`` for a gradient: shape mistakes named first; an undiagnosed mismatch also shows what finite
    differences (the slope of L = Σ dy ⊙ f measured numerically) give, so the student sees an independent answer."""
    got = np.asarray(got)
    if got.shape != want.shape:
        for shape, message in shape_hints:
            if got.shape == shape:
                raise AssertionError(f"{what}: {message}\nSmallest failing input:\n{describe(inputs)}")
    try:
        compare(got, want, inputs, mistakes, what=what, rtol=1e-6, atol=1e-9)
    except AssertionError as e:
        message = str(e)
        if "differs from the reference" in message and context.current().reveal:
            err = np.abs(got - want)
            where = np.unravel_index(np.nanargmax(err), err.shape)
            head, _, tail = message.partition("\nSmallest failing input:")
            message = f"{head} Finite differences give {fd[where]:.6g} there.\nSmallest failing input:{tail}"
        raise AssertionError(message) from None


def grads_tuple(got: Any, names: tuple[str, ...], what: str, inputs: dict[str, Any]) -> tuple:
    if len(names) == 1:
        return (got,)
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        n = len(got) if isinstance(got, (tuple, list)) else 1
        raise AssertionError(
            f"{what}: return {len(names)} arrays ({', '.join(names)}) in that order; yours returned {n}.\n"
            f"On input:\n{describe(inputs)}"
        )
    return tuple(got)


def check_against(
    grads: tuple,
    wants: tuple,
    f: Callable[..., np.ndarray],
    args: list,
    dy: np.ndarray,
    names: tuple[str, ...],
    inputs: dict[str, Any],
    mistakes: dict[str, list[Mistake]],
    shape_hints: dict[str, list],
    layer: str,
) -> None:
    for wrt, (name, got, want) in enumerate(zip(names, grads, wants, strict=True)):
        fd = finite_differences(f, args, wrt, dy)
        # the reference itself is checked against finite differences on every input (never expected to fire)
        if not np.allclose(want, fd, rtol=1e-5, atol=1e-7):
            raise RuntimeError(f"reference {layer} backward disagrees with finite differences for {name}")
        compare_grad(
            got,
            want,
            fd,
            inputs,
            mistakes.get(name, []),
            what=f"{layer} backward, {name}",
            shape_hints=shape_hints.get(name, []),
        )
