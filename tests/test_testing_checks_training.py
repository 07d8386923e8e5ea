"""Lesson 06 checkers: their formulas agree with minigpt.train and Optax; mistakes are named."""

import math

import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minigpt.train import TrainConfig, learning_rate

from minigpt.testing.checks import training as OC


@given(st.integers(0, 20), st.integers(2, 40), st.sampled_from([0.0, 1e-4]))
def test_the_schedule_formula_is_the_trainers(W, extra, min_lr):
    tcfg = TrainConfig(lr=1e-3, min_lr=min_lr, warmup_steps=W, lr_decay_steps=W + extra)
    steps = np.arange(W + extra + 5)
    ours = OC.warmup_cosine(steps, 1e-3, min_lr, W, W + extra)
    if W == 0:  # the trainer's max(W, 1) makes no warm-up at all: step 0 is already on the cosine
        assert np.allclose(ours, [learning_rate(int(s), tcfg) for s in steps], rtol=1e-5)
    else:
        assert np.allclose(ours, [float(learning_rate(int(s), tcfg)) for s in steps], rtol=1e-5, atol=1e-9)


@given(st.integers(1, 6), st.sampled_from([0.0, 0.1]), st.integers(0, 2**16))
def test_one_adamw_step_is_optaxs(t, wd, seed):
    rng = np.random.default_rng(seed)
    p, g, m = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) * 0.1
    v = np.abs(rng.standard_normal((3, 4))) * 0.1
    tx = optax.adamw(0.01, b1=0.9, b2=0.95, eps=1e-8, weight_decay=wd)
    state = tx.init(p)
    state = (optax.ScaleByAdamState(count=np.int32(t - 1), mu=m, nu=v), *state[1:])
    updates, (adam, *_) = tx.update(g, state, p)
    new_p, new_m, new_v = OC.adamw(p, g, m, v, t, 0.01, 0.9, 0.95, 1e-8, wd)
    assert np.allclose(new_p, p + np.asarray(updates), rtol=1e-5, atol=1e-7)
    assert np.allclose(new_m, adam.mu, rtol=1e-6) and np.allclose(new_v, adam.nu, rtol=1e-6)


def schedule(step, lr, min_lr, W, D):
    if step < W:
        return lr * (step + 1) / W
    p = min(1.0, (step - W) / (D - W))
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * p)) / 2


def adamw(p, g, m, v, t, lr, b1, b2, eps, wd):
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return p - lr * ((m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) + wd * p), m, v


def clip(grads, max_norm):
    norm = math.sqrt(sum((g**2).sum() for g in grads.values()))
    return {k: g * min(1, max_norm / norm) for k, g in grads.items()}, norm


def fails_with(checker, fn, *phrases):
    with pytest.raises(AssertionError) as e:
        checker(fn)
    for phrase in phrases:
        assert phrase in str(e.value), str(e.value)


def test_correct_implementations_pass():
    OC.check_warmup_cosine(schedule)
    OC.check_adamw_step(adamw)
    OC.check_clip_by_global_norm(clip)


def test_schedule_mistakes():
    fails_with(
        OC.check_warmup_cosine, lambda s, lr, lo, W, D: lr * s / W if s < W else schedule(s, lr, lo, W, D), "off by one"
    )
    fails_with(OC.check_warmup_cosine, lambda s, lr, lo, W, D: schedule(s, lr, 0.0, W, D), "decays to 0")


def test_adamw_mistakes():
    def no_correction(p, g, m, v, t, lr, b1, b2, eps, wd):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        return p - lr * (m / (np.sqrt(v) + eps) + wd * p), m, v

    fails_with(OC.check_adamw_step, no_correction, "no bias correction")
    fails_with(OC.check_adamw_step, lambda *a: adamw(*a[:4], a[4] + 1, *a[5:]), "wrong t")
    fails_with(OC.check_adamw_step, lambda *a: adamw(*a)[:2], "three arrays")


def test_clip_mistakes():
    per_tensor = lambda grads, c: ({k: g * min(1, c / np.linalg.norm(g)) for k, g in grads.items()}, clip(grads, c)[1])  # noqa: E731
    fails_with(OC.check_clip_by_global_norm, per_tensor, "its own norm")
    always = lambda grads, c: ({k: g * c / clip(grads, c)[1] for k, g in grads.items()}, clip(grads, c)[1])  # noqa: E731
    fails_with(OC.check_clip_by_global_norm, always, "stay unchanged")
    fails_with(
        OC.check_clip_by_global_norm, lambda grads, c: (clip(grads, c)[0], clip(grads, c)[1] ** 2), "square root"
    )
