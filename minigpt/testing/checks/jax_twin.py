"""Checkers for lesson 05: a layer written in JAX, compiled with ``jax.jit`` and differentiated with
``jax.grad``, checked against its NumPy twin in ``minigpt.reference`` (in float64). Same contract as
``minigpt.testing.checkers``; JAX is imported only when a check runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import functional as F
from minigpt.testing.checks.backprop import check_layer_backward
from minigpt.testing.checks.diagnosis import arrays, call, compare, run
from minigpt.testing.checks.forward_and_loss import check_layer_norm

_NOT_TRACEABLE = (
    "{what}: your function does not run under jax.jit: {error}. Inside jit the arrays are tracers — use "
    "jax.numpy (jnp) instead of np, and jnp.where instead of Python if/float() on an array."
)


def _is_tracer_error(e: Exception) -> bool:
    """Whether ``e`` says that the function used a traced array as a concrete one (by its type's name, so that an
    error raised in the grader's worker and re-raised here under the same name counts too)."""
    name = type(e).__name__
    return "Tracer" in name or "Concretization" in name or "tracer" in str(e)[:200]


def traceable(fn: Callable, what: str, *example: Any, static_argnums: tuple[int, ...] = ()) -> Callable:
    """``jax.jit(fn)`` returning NumPy, after one traced call that turns a tracer error into a diagnosis. A function
    that runs in another process (the grader's ``RemoteFunction``) is compiled there, through its ``under_jit``."""
    import jax  # JAX: the checkers of lessons 01-04 share a module with these and need none

    remote = getattr(fn, "under_jit", None)
    jitted = remote(static_argnums) if remote is not None else jax.jit(fn, static_argnums=static_argnums)
    try:
        jitted(*example)
    except Exception as e:  # noqa: BLE001 - any other crash is reported by the property with its input
        if _is_tracer_error(e):
            raise AssertionError(_NOT_TRACEABLE.format(what=what, error=type(e).__name__)) from None

    def numpy_out(*args: Any) -> Any:
        out = jitted(*args)
        return tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) else np.asarray(out)

    return numpy_out


def check_jax_gelu(fn: Callable[[Any], Any], max_examples: int = 20) -> None:
    """``fn(x)`` in jax.numpy: GPT-2's tanh GELU ½x(1 + tanh(√(2/π)(x + 0.044715x³))), equal under ``jax.jit`` to
    ``reference.gelu`` in float64."""
    import jax  # JAX: the checkers of lessons 01-04 share a module with these and need none

    with jax.enable_x64(True):
        jitted = traceable(fn, "gelu", np.zeros((2, 3)))

        @st.composite
        def inputs(draw):
            shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
            return arrays(draw, shape, draw(st.sampled_from([1.0, 3.0])))

        def prop(x):
            ins = {"x": x}
            got = call(jitted, "gelu", ins, x.copy())
            erf = np.vectorize(math.erf)
            c = math.sqrt(2 / math.pi)
            compare(
                got,
                F.gelu(x),
                ins,
                [
                    (
                        "that is the exact GELU x·Φ(x) (with erf); GPT-2 uses the tanh approximation.",
                        lambda: 0.5 * x * (1 + erf(x / math.sqrt(2))),
                    ),
                    ("the cubic term 0.044715·x³ inside the tanh is missing.", lambda: 0.5 * x * (1 + np.tanh(c * x))),
                    (
                        "the factor ½ is missing: GELU(x) = ½x(1 + tanh(…)).",
                        lambda: x * (1 + np.tanh(c * (x + 0.044715 * x**3))),
                    ),
                ],
                what="gelu",
            )

        run(prop, inputs(), max_examples)


def check_jax_layer_norm(fn: Callable[..., Any], max_examples: int = 20) -> None:
    """``fn(x, weight, bias, eps)`` in jax.numpy, compiled with ``jax.jit(fn, static_argnums=3)``, equal to
    ``reference.layer_norm`` in float64 (the diagnoses of ``check_layer_norm``)."""
    import jax  # JAX: the checkers of lessons 01-04 share a module with these and need none

    with jax.enable_x64(True):
        example = (np.ones((1, 2, 3)), np.ones(3), np.zeros(3), 1e-5)
        check_layer_norm(traceable(fn, "layer_norm", *example, static_argnums=(3,)), max_examples)


def check_jax_layer_norm_grads(fn: Callable[..., Any], max_examples: int = 15) -> None:
    """``fn(dy, x, weight, bias, eps)`` → (dx, dweight, dbias) of L = Σ dy ⊙ layer_norm(x, weight, bias, eps),
    computed with ``jax.grad`` (or ``jax.vjp``) and compiled with jit; checked against the hand-written
    ``reference`` backward and finite differences (the diagnoses of ``check_layer_backward``)."""
    import jax  # JAX: the checkers of lessons 01-04 share a module with these and need none

    with jax.enable_x64(True):
        example = (np.ones((1, 2, 3)), np.arange(6.0).reshape(1, 2, 3), np.ones(3), np.zeros(3), 1e-5)
        jitted = traceable(fn, "layer_norm grads", *example, static_argnums=(4,))
        check_layer_backward(jitted, "layer_norm", max_examples)
