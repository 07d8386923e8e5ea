"""Checkers for exercise 11's preference half: the DPO loss and its gradient with the reference frozen, against
``minigpt.reference.dpo`` in float64 (``assistant`` holds the SFT half and gathers both). A wrong function raises
an AssertionError that names the mistake (the sign flipped, β on one side, π_ref ignored or not frozen …).

    m = β[(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l))];   L = mean over pairs of softplus(−m)
    ∂L/∂log π_θ(y_w) = −β σ(−m) / B,   ∂L/∂log π_θ(y_l) = +β σ(−m) / B,   ∂L/∂log π_ref = 0 (frozen)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import dpo as D
from minigpt.testing.checks.diagnosis import call, compare, describe, generator, run
from minigpt.testing.checks.jax_twin import traceable


@st.composite
def _preference_logps(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The four (B,) log-prob arrays and β. Policy and reference differ; now and then margins of hundreds of
    nats, where log(1 + e^{−m}) overflows."""
    B = draw(st.integers(1, 5))
    rng = generator(draw)
    scale = draw(st.sampled_from([1.0, 5.0, 2000.0]))
    ref = -np.abs(rng.standard_normal((2, B))) * scale - 1.0
    policy = ref + rng.standard_normal((2, B)) * scale / 5
    return policy[0], policy[1], ref[0], ref[1], draw(st.sampled_from([0.1, 0.5, 1.0, 2.0]))


def _mistaken_margins(pc, pr, rc, rr, beta) -> list[tuple[str, np.ndarray]]:
    return [
        (
            "β is applied to the chosen reply's log-ratio only; it multiplies the whole difference.",
            beta * (pc - rc) - (pr - rr),
        ),
        ("the reference π_ref is ignored: m uses log π_θ − log π_ref for each reply.", beta * (pc - pr)),
        (
            "π_ref is added; subtract it: each reply's reward is β (log π_θ − log π_ref).",
            beta * ((pc + rc) - (pr + rr)),
        ),
        ("β is missing: m = β · [(…) − (…)].", (pc - rc) - (pr - rr)),
    ]


def check_dpo_loss(fn: Callable[..., Any], max_examples: int = 30) -> None:
    """``fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)`` → float,
    the mean over pairs of −log σ(m) (``reference.dpo.dpo_loss``)."""

    def prop(example):
        pc, pr, rc, rr, beta = example
        names = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps", "beta")
        ins = dict(zip(names, example, strict=True))
        got = call(fn, "dpo_loss", ins, pc.copy(), pr.copy(), rc.copy(), rr.copy(), beta)
        m = D.dpo_margins(pc, pr, rc, rr, beta)
        if not np.all(np.isfinite(np.asarray(got, dtype=np.float64))):
            raise AssertionError(
                "dpo_loss: inf/NaN for a large margin: log(1 + e^(−m)) overflowed. Write −log σ(m) as "
                "np.logaddexp(0, −m), which never does.\n" + describe(ins)
            )
        softplus = lambda x: np.logaddexp(0.0, x)  # noqa: E731 - the formula reads better than a def
        mistakes = [
            (
                "the sign is flipped: that is −log σ(−m), which prefers the rejected reply; use −log σ(m).",
                lambda: softplus(m).mean(),
            ),
            ("the minus is missing: that is log σ(m); the loss is −log σ(m) ≥ 0.", lambda: -softplus(-m).mean()),
            ("that is the sum over pairs; the loss is their mean.", lambda: softplus(-m).sum()),
        ]
        mistakes += [(msg, lambda w=w: softplus(-w).mean()) for msg, w in _mistaken_margins(pc, pr, rc, rr, beta)]
        compare(got, D.dpo_loss(pc, pr, rc, rr, beta), ins, mistakes, what="dpo_loss")

    run(prop, _preference_logps(), max_examples)


def check_dpo_grads(fn: Callable[..., Any], max_examples: int = 15) -> None:
    """``fn(pc, pr, rc, rr, beta)`` in jax.numpy, compiled with ``jax.jit(fn, static_argnums=4)`` → the gradient
    of the DPO loss w.r.t. all four log-prob arrays, by ``jax.grad``: (−βσ(−m)/B, +βσ(−m)/B, 0, 0) — the
    reference frozen by ``jax.lax.stop_gradient``, so that its two gradients are exactly 0."""
    import jax  # JAX: the other checks of this module need none

    with jax.enable_x64(True):
        example = (np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0.5)
        jitted = traceable(fn, "dpo_grads", *example, static_argnums=(4,))

        def prop(example):
            pc, pr, rc, rr, beta = example
            ins = dict(zip(("pc", "pr", "rc", "rr", "beta"), example, strict=True))
            got = call(jitted, "dpo_grads", ins, pc.copy(), pr.copy(), rc.copy(), rr.copy(), beta)
            if not (isinstance(got, (tuple, list)) and len(got) == 4):
                raise AssertionError("dpo_grads: return the four gradients (d_pc, d_pr, d_rc, d_rr).\n" + describe(ins))
            d_pc, d_pr = D.dpo_loss_backward(pc, pr, rc, rr, beta)
            if np.any(np.asarray(got[2]) != 0) or np.any(np.asarray(got[3]) != 0):
                raise AssertionError(
                    "dpo_grads: π_ref is not frozen: a gradient reached the reference log-probs. Wrap them in "
                    "jax.lax.stop_gradient: π_ref is the fixed SFT model the policy is measured against, and in "
                    "a training step its log-probs come from parameters jax.grad would otherwise move.\n"
                    + describe(ins)
                )
            for k, (g, want) in enumerate(((got[0], d_pc), (got[1], d_pr))):
                compare(
                    g,
                    want,
                    ins,
                    [
                        ("the sign is flipped: descending this gradient lowers the chosen reply.", lambda w=want: -w),
                        (
                            "that is the gradient of the sum over pairs; the loss is their mean.",
                            lambda w=want: w * len(pc),
                        ),
                    ],
                    what=f"dpo_grads ({('d_pc', 'd_pr')[k]})",
                )

        run(prop, _preference_logps(), max_examples)
