"""Checkers for lesson 06 (training): the warmup-cosine learning rate, one AdamW step and global-norm clipping,
each against the formulas of ``minigpt.train.learning_rate`` and ``minigpt.reference.optim`` (computed here in
float64). Same contract as ``minigpt.testing.checkers``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.testing.checks.diagnosis import arrays, call, compare, describe, run


def warmup_cosine(
    step: np.ndarray,
    lr: float,
    min_lr: float,
    W: int,
    D: int,
    *,
    shift: int = 1,
    clip: bool = True,
    floor: bool = True,
    origin: int | None = None,
) -> np.ndarray:
    """lr·(s+1)/W for s < W, then min_lr + ½(lr − min_lr)(1 + cos(π·(s − W)/(D − W))), min_lr after D.
    The keyword arguments make the classic mistakes (warm-up from 0, no clamp, decay to 0, progress from 0)."""
    s = np.asarray(step, np.float64)
    D = max(D, W + 1)
    start = W if origin is None else origin
    warm = lr * (s + shift) / max(W, 1)
    progress = (s - start) / (D - start)
    progress = np.clip(progress, 0.0, 1.0) if clip else progress
    low = min_lr if floor else 0.0
    return np.where(s < W, warm, low + 0.5 * (lr - low) * (1 + np.cos(math.pi * progress)))


def check_warmup_cosine(fn: Callable[..., float], max_examples: int = 20) -> None:
    """``fn(step, lr, min_lr, warmup_steps, decay_steps)`` → the learning rate at ``step`` (0, 1, …) as a float."""

    @st.composite
    def inputs(draw):
        W = draw(st.integers(1, 10))
        D = W + draw(st.integers(2, 30))
        lr = draw(st.sampled_from([1e-3, 3e-4, 2e-3]))
        return lr, lr * draw(st.sampled_from([0.0, 0.1, 0.5])), W, D

    def prop(example):
        lr, min_lr, W, D = example
        steps = np.arange(D + 6)
        ins = {"lr": lr, "min_lr": min_lr, "warmup_steps": W, "decay_steps": D, "steps": f"0 … {D + 5}"}
        got = np.array(
            [float(call(fn, "warmup_cosine", {**ins, "step": int(s)}, int(s), lr, min_lr, W, D)) for s in steps]
        )
        compare(
            got,
            warmup_cosine(steps, lr, min_lr, W, D),
            ins,
            [
                (
                    "warm-up off by one: step 0 already trains, at lr·1/W; use lr·(step+1)/W.",
                    lambda: warmup_cosine(steps, lr, min_lr, W, D, shift=0),
                ),
                (
                    "after decay_steps the rate must stay at min_lr: clamp the cosine's progress to [0, 1].",
                    lambda: warmup_cosine(steps, lr, min_lr, W, D, clip=False),
                ),
                (
                    "the cosine decays to 0; it decays to min_lr: min_lr + ½(lr − min_lr)(1 + cos(π·progress)).",
                    lambda: warmup_cosine(steps, lr, min_lr, W, D, floor=False),
                ),
                (
                    "the cosine's progress starts at step 0; it starts after the warm-up: (step − W)/(D − W).",
                    lambda: warmup_cosine(steps, lr, min_lr, W, D, origin=0),
                ),
            ],
            what="warmup_cosine",
            rtol=1e-6,
            atol=1e-12,
        )

    run(prop, inputs(), max_examples)


def adamw(
    p,
    g,
    m,
    v,
    t,
    lr,
    b1,
    b2,
    eps,
    wd,
    *,
    correct=True,
    decoupled=True,
    lr_on_decay=True,
    eps_inside=False,
    squared=True,
):
    """One AdamW step on one tensor (t counts from 1); keywords make the classic mistakes."""
    if not decoupled:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * (g * g if squared else np.abs(g))
    mh, vh = (m / (1 - b1**t), v / (1 - b2**t)) if correct else (m, v)
    step = mh / (np.sqrt(vh + eps) if eps_inside else np.sqrt(vh) + eps)
    if not decoupled:
        return p - lr * step, m, v
    return (p - lr * (step + wd * p) if lr_on_decay else p - lr * step - wd * p), m, v


def check_adamw_step(fn: Callable[..., Any], max_examples: int = 20) -> None:
    """``fn(param, grad, m, v, t, lr, b1, b2, eps, weight_decay)`` → (new param, new m, new v) for one tensor;
    t is this step's number (1 for the first step), the decay is decoupled and scaled by lr (AdamW)."""

    @st.composite
    def inputs(draw):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))
        p, g = arrays(draw, shape), arrays(draw, shape)
        m, v = arrays(draw, shape, 0.1), np.abs(arrays(draw, shape, 0.1))
        return (
            p,
            g,
            m,
            v,
            draw(st.integers(1, 5)),
            draw(st.sampled_from([1e-2, 1e-1])),
            draw(st.sampled_from([0.0, 0.1, 0.5])),
        )

    def prop(example):
        p, g, m, v, t, lr, wd = example
        b1, b2, eps = 0.9, 0.95, 1e-8 if t > 2 else 1e-3
        ins = {
            "param": p,
            "grad": g,
            "m": m,
            "v": v,
            "t": t,
            "lr": lr,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "weight_decay": wd,
        }
        got = call(fn, "adamw_step", ins, p.copy(), g.copy(), m.copy(), v.copy(), t, lr, b1, b2, eps, wd)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError("adamw_step: return three arrays (new param, new m, new v).\n" + describe(ins))
        args = (p, g, m, v, t, lr, b1, b2, eps, wd)
        want = adamw(*args)
        variants = {
            "no bias correction: divide m by 1 − β₁ᵗ and v by 1 − β₂ᵗ (m and v start at 0).": dict(correct=False),
            "bias correction with the wrong t: t is this step's number, 1 on the first step.": "t",
            "that is Adam with L2 (decay added to the gradient); AdamW decouples it: θ ← θ − η(m̂/(√v̂ + ε) + λθ).": dict(
                decoupled=False
            ),
            "the decay must be scaled by the learning rate too: θ ← θ − η(m̂/(√v̂ + ε) + λθ).": dict(lr_on_decay=False),
            "ε goes outside the square root: m̂/(√v̂ + ε).": dict(eps_inside=True),
            "the second moment averages g², the squared gradient.": dict(squared=False),
        }
        for i, what in enumerate(("param", "m", "v")):
            mistakes = []
            for message, kw in variants.items():
                if kw == "t":
                    mistakes += [(message, lambda d=d, i=i: adamw(*args[:4], t + d, *args[5:])[i]) for d in (-1, 1)]
                else:
                    mistakes.append((message, lambda kw=kw, i=i: adamw(*args, **kw)[i]))
            compare(got[i], want[i], ins, mistakes, what=f"adamw_step, new {what}")

    run(prop, inputs(), max_examples)


def check_clip_by_global_norm(fn: Callable[..., Any], max_examples: int = 20) -> None:
    """``fn(grads, max_norm)`` with grads a dict name → array returns (clipped dict, norm before clipping):
    ‖g‖ = √(Σ over every tensor of Σ g²); every tensor × max_norm/‖g‖ when ‖g‖ > max_norm, else unchanged."""

    @st.composite
    def inputs(draw):
        n = draw(st.integers(1, 3))
        grads = {
            f"w{i}": arrays(draw, tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))) for i in range(n)
        }
        total = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        return grads, total * draw(st.sampled_from([0.3, 0.8, 1.5]))

    def prop(example):
        grads, max_norm = example
        ins = {"grads": grads, "max_norm": max_norm}
        got = call(fn, "clip_by_global_norm", ins, {k: g.copy() for k, g in grads.items()}, max_norm)
        if not isinstance(got, (tuple, list)) or len(got) != 2 or not isinstance(got[0], dict):
            raise AssertionError("clip_by_global_norm: return (clipped grads as a dict, norm).\n" + describe(ins))
        clipped, norm = got
        if set(clipped) != set(grads):
            raise AssertionError(f"clip_by_global_norm: the clipped dict must keep the keys {sorted(grads)}.")
        total = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        sq = sum(float(np.sum(g * g)) for g in grads.values())
        compare(
            np.asarray(norm, np.float64).reshape(()),
            np.asarray(total),
            ins,
            [
                ("the norm needs the square root: ‖g‖ = √(Σ g²).", lambda: np.asarray(sq)),
                (
                    "the global norm sums over every tensor, not just the first.",
                    lambda: np.asarray(np.linalg.norm(next(iter(grads.values())))),
                ),
            ],
            what="clip_by_global_norm, norm",
        )
        scale = min(1.0, max_norm / total)
        flat = lambda d: np.concatenate([np.ravel(d[k]) for k in sorted(grads)])  # noqa: E731
        compare(
            flat(clipped),
            flat({k: g * scale for k, g in grads.items()}),
            ins,
            [
                (
                    "each tensor was clipped by its own norm; scale them all by one factor max_norm/‖g‖ (global).",
                    lambda: flat({k: g * min(1.0, max_norm / np.linalg.norm(g)) for k, g in grads.items()}),
                ),
                (
                    "gradients below the limit must stay unchanged: scale only when ‖g‖ > max_norm.",
                    lambda: flat({k: g * max_norm / total for k, g in grads.items()}),
                ),
            ],
            what="clip_by_global_norm, clipped grads",
        )

    run(prop, inputs(), max_examples)
