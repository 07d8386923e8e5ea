"""The LoRA checker: a student's adapter initialisation, adapted forward and training step, each mistake named.

    y = x W + b + s · (x A) B,   s = α / r,   A (in, r) random, B (r, out) = 0,   W and b frozen

``check_lora(init=..., forward=..., step=...)`` checks whichever of the three it is given, on hypothesis-drawn
inputs in float64 against ``minigpt.reference.lora``; a mismatch raises an ``AssertionError`` naming the classic
mistake it reproduces (missing α/r scale, B not zero-initialised, A and B swapped, the bias dropped, the update's
sign, a step uphill, a gradient not summed over the batch's rows, a gradient reaching the frozen W) and the
smallest failing input, like the other checkers (``minigpt.testing.checks.diagnosis``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import lora as RL
from minigpt.testing.checks.diagnosis import call, compare, describe, generator, run

__all__ = ["check_lora"]

_NO_SCALE = (
    "the α/r scale is missing: the update is s · (x A) B with s = α / r (r = A.shape[1]); without it the "
    "adapters' effect changes with the rank."
)
_WRONG_SCALE = "the scale is s = α / r (α = alpha, r = A.shape[1]), not {}."
_FROZEN = (
    "a gradient reached the frozen W: LoRA trains only A and B — return W (and b) exactly as they came in. "
    "Yours moved by the base gradient ∂L/∂W = xᵀ dy."
)


def _draw_layer(draw: st.DrawFn, square: bool = False) -> dict[str, Any]:
    rng = generator(draw)
    d_in = draw(st.integers(1, 5))
    d_out = d_in if square else draw(st.integers(1, 5))
    r = draw(st.integers(1, 3))
    lead = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    bias = rng.standard_normal(d_out) if draw(st.booleans()) else None
    return {
        "x": rng.standard_normal((*lead, d_in)),
        "W": rng.standard_normal((d_in, d_out)),
        "b": bias,
        "A": rng.standard_normal((d_in, r)),
        "B": rng.standard_normal((r, d_out)),  # a trained B: not zero, so the update shows
        "alpha": float(draw(st.sampled_from([1.0, 2.0, 8.0, 16.0]))),
        "dy": rng.standard_normal((*lead, d_out)),
        "lr": float(draw(st.sampled_from([0.1, 0.01]))),
    }


def _layer(draw: st.DrawFn) -> dict[str, Any]:
    return _draw_layer(draw, square=draw(st.booleans()))  # square layers let "A and B swapped" run


_layers = st.composite(_layer)


def _scale(ins: dict[str, Any]) -> float:
    return ins["alpha"] / ins["A"].shape[1]


def _forward_mistakes(ins: dict[str, Any]) -> list[tuple[str, Callable[[], Any]]]:
    x, W, b, A, B, alpha = (ins[k] for k in ("x", "W", "b", "A", "B", "alpha"))
    r = A.shape[1]
    base = x @ W + (0 if b is None else b)
    return [
        (_NO_SCALE, lambda: base + (x @ A) @ B),
        (_WRONG_SCALE.format("r / α"), lambda: base + (r / alpha) * ((x @ A) @ B)),
        (_WRONG_SCALE.format("α alone"), lambda: base + alpha * ((x @ A) @ B)),
        (_WRONG_SCALE.format("1 / r"), lambda: base + ((x @ A) @ B) / r),
        (
            "A and B are swapped: x first meets A (in, r), then B (r, out) — x A B, not x Bᵀ Aᵀ.",
            lambda: base + (alpha / r) * ((x @ B.T) @ A.T),
        ),
        ("the base layer x W + b is missing: LoRA adds its update to the frozen layer's output.",
         lambda: (alpha / r) * ((x @ A) @ B)),
        ("the bias b was dropped: the frozen layer is x W + b, and the update is added to all of it.",
         lambda: x @ W + (alpha / r) * ((x @ A) @ B)),
        ("the update's sign is flipped: y = x W + b + s (x A) B — LoRA adds its update.",
         lambda: base - (alpha / r) * ((x @ A) @ B)),
    ]  # fmt: skip


def _check_forward(fn: Callable[..., Any], max_examples: int) -> None:
    def prop(ins: dict[str, Any]) -> None:
        shown = {k: v for k, v in ins.items() if k not in ("dy", "lr")}
        args = [None if v is None else np.copy(v) for v in (ins["x"], ins["W"], ins["b"], ins["A"], ins["B"])]
        got = call(fn, "lora forward", shown, *args, ins["alpha"])
        want = RL.lora_linear(ins["x"], ins["W"], ins["b"], ins["A"], ins["B"], _scale(ins))
        compare(got, want, shown, _forward_mistakes(ins), what="lora forward")

    run(prop, _layers(), max_examples)


def _check_init(fn: Callable[..., Any], max_examples: int) -> None:
    @st.composite
    def sizes(draw):
        return draw(st.integers(2, 12)), draw(st.integers(2, 12)), draw(st.integers(1, 4)), draw(st.integers(0, 99))

    def prop(example) -> None:
        d_in, d_out, r, seed = example
        ins = {"d_in": d_in, "d_out": d_out, "rank": r}
        where = "\nOn input:\n" + describe(ins)
        out = call(fn, "lora init", ins, d_in, d_out, r, np.random.default_rng(seed))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise AssertionError(f"lora init: return the pair (A, B), got {type(out).__name__}.{where}")
        A, B = (np.asarray(m) for m in out)
        if A.shape == (r, d_out) and B.shape == (d_in, r) and (d_in, r) != (r, d_out):
            raise AssertionError(f"lora init: you returned (B, A); return (A, B) with A (in, r), B (r, out).{where}")
        if A.shape != (d_in, r) or B.shape != (r, d_out):
            raise AssertionError(
                f"lora init: A must be (in, r) = {(d_in, r)} and B (r, out) = {(r, d_out)}; yours are {A.shape} "
                f"and {B.shape}.{where}"
            )
        if np.all(A == 0) and np.any(B != 0):
            raise AssertionError(
                "lora init: A and B are swapped: A starts random and B at zero (LoRA's choice). Yours starts A at "
                "zero, so B's first gradient s (x A)ᵀ dy is zero." + where
            )
        if np.any(B != 0):
            raise AssertionError(
                "lora init: B is not zero-initialised: with B = 0 the adapted layer starts exactly equal to the "
                "frozen base (x W + s (x A)·0 = x W), so fine-tuning starts from the pretrained model." + where
            )
        if np.all(A == 0):
            raise AssertionError(
                "lora init: A is zero too: with A = B = 0 neither ever gets a gradient (dA = s xᵀ dy Bᵀ = 0, "
                "dB = s (x A)ᵀ dy = 0); draw A at random, e.g. N(0, 1/in)." + where
            )
        if not np.all(np.isfinite(A)) or A.size > 1 and np.all(A == A.flat[0]):
            raise AssertionError("lora init: draw the entries of A at random (all equal or not finite)." + where)

    run(prop, sizes(), max_examples)


def _sgd(ins: dict[str, Any], *, scale: float | None = None, move_base: bool = False):
    """What one SGD step returns; ``scale`` other than α/r and ``move_base`` plant the classic mistakes."""
    s = _scale(ins) if scale is None else scale
    _, cache = RL.lora_linear_forward(ins["x"], ins["W"], ins["b"], ins["A"], ins["B"], s)
    _, dA, dB, dW, db = RL.lora_linear_backward(ins["dy"], cache, base_grads=True)
    lr = ins["lr"]
    W, b = (ins["W"] - lr * dW, None if ins["b"] is None else ins["b"] - lr * db) if move_base else (ins["W"], ins["b"])
    return W, b, ins["A"] - lr * dA, ins["B"] - lr * dB


def _check_step(fn: Callable[..., Any], max_examples: int) -> None:
    def prop(ins: dict[str, Any]) -> None:
        names = ("x", "W", "b", "A", "B")
        args = [None if ins[k] is None else np.copy(ins[k]) for k in names]
        out = call(fn, "lora step", ins, *args, ins["alpha"], np.copy(ins["dy"]), ins["lr"])
        where = "\nOn input:\n" + describe(ins)
        if not (isinstance(out, tuple) and len(out) == 4):
            raise AssertionError(f"lora step: return the tuple (W, b, A, B) after the step.{where}")
        W, b = out[0], out[1]
        if not np.array_equal(np.asarray(W), ins["W"]) or (ins["b"] is not None and not np.array_equal(b, ins["b"])):
            raise AssertionError(f"lora step: {_FROZEN}{where}")
        r = ins["A"].shape[1]
        rows = int(np.prod(ins["x"].shape[:-1]))
        first = {**ins, "x": ins["x"][:1], "dy": ins["dy"][:1]}
        for i, name in ((2, "A"), (3, "B")):
            mistakes = [(_NO_SCALE, lambda i=i: _sgd(ins, scale=1.0)[i])]
            mistakes.append(
                (
                    f"{name} moved uphill: a step goes against the gradient, {name} − lr · ∂L/∂{name}, not + lr.",
                    lambda i=i: _sgd({**ins, "lr": -ins["lr"]})[i],
                )
            )
            mistakes.append(
                (
                    f"∂L/∂{name} must sum over every row of the batch (all leading axes of x, here {rows} rows); "
                    "yours averages them.",
                    lambda i=i: _sgd({**ins, "lr": ins["lr"] / rows})[i],
                )
            )
            mistakes.append(
                (
                    f"∂L/∂{name} must sum over every row of the batch (all leading axes of x: flatten them, e.g. "
                    "x.reshape(-1, d_in)); yours uses only the first batch element.",
                    lambda i=i: _sgd(first)[i],
                )
            )
            mistakes.append((_WRONG_SCALE.format("r / α"), lambda i=i: _sgd(ins, scale=r / ins["alpha"])[i]))
            mistakes.append(
                (f"{name} did not change: one step moves it by −lr · ∂L/∂{name}.", lambda name=name: ins[name])
            )
            compare(out[i], _sgd(ins)[i], ins, mistakes, what=f"lora step ({name} after the step)")

    run(prop, _layers(), max_examples)


def check_lora(
    init: Callable[..., Any] | None = None,
    forward: Callable[..., Any] | None = None,
    step: Callable[..., Any] | None = None,
    max_examples: int = 30,
) -> None:
    """Check a LoRA layer in NumPy; pass any of the three parts.

    ``init(d_in, d_out, rank, rng) -> (A, B)``: fresh adapters, A (in, r) random, B (r, out) zero.
    ``forward(x, W, b, A, B, alpha) -> y``: x W + b + (α/r) (x A) B, x (…, in), b None or (out,), r = A.shape[1].
    ``step(x, W, b, A, B, alpha, dy, lr) -> (W, b, A, B)``: one SGD step on the adapters for the upstream
    gradient dy = ∂L/∂y; the frozen W and b come back unchanged.
    """
    if init is None and forward is None and step is None:
        raise ValueError("check_lora needs at least one of init=, forward=, step= (your functions)")
    if init is not None:
        _check_init(init, max_examples)
    if forward is not None:
        _check_forward(forward, max_examples)
    if step is not None:
        _check_step(step, max_examples)
