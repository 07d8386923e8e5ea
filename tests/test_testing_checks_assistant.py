"""minigpt.testing.checks.assistant: right answers pass; each typical mistake is named."""

from __future__ import annotations

import numpy as np
import pytest

from minigpt.testing.checks.assistant import (
    check_dpo_grads,
    check_dpo_loss,
    check_sequence_logprobs,
    check_sft_loss,
    check_sft_targets,
)


def log_softmax(z, axis=-1):
    z = z - z.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


def picked(logits, targets, axis=-1):
    """log softmax[target] at each position (ignored targets read as 0)."""
    return np.take_along_axis(log_softmax(logits, axis), np.maximum(targets, 0)[..., None], -1)[..., 0]


def sft_targets(ids, mask, ignore_index):
    return ids[:, :-1], np.where(mask[:, 1:], ids[:, 1:], ignore_index)


def sft_loss(logits, targets, ignore_index):
    keep = targets != ignore_index
    return float(-(picked(logits, targets) * keep).sum() / max(keep.sum(), 1))


def sequence_logprobs(logits, targets, ignore_index):
    return (picked(logits, targets) * (targets != ignore_index)).sum(-1)


def margins(pc, pr, rc, rr, beta):
    return beta * ((pc - rc) - (pr - rr))


def dpo_loss(pc, pr, rc, rr, beta):
    return float(np.mean(np.logaddexp(0.0, -margins(pc, pr, rc, rr, beta))))


def dpo_grads(pc, pr, rc, rr, beta, frozen=True, sign=1.0):
    import jax
    import jax.numpy as jnp

    def loss(pc, pr, rc, rr):
        if frozen:
            rc, rr = jax.lax.stop_gradient(rc), jax.lax.stop_gradient(rr)
        return sign * jnp.mean(jax.nn.softplus(-beta * ((pc - rc) - (pr - rr))))

    return jax.grad(loss, argnums=(0, 1, 2, 3))(pc, pr, rc, rr)


def test_right_answers_pass():
    check_sft_targets(sft_targets, max_examples=15)
    check_sft_loss(sft_loss, max_examples=15)
    check_sequence_logprobs(sequence_logprobs, max_examples=15)
    check_dpo_loss(dpo_loss, max_examples=20)
    check_dpo_grads(dpo_grads, max_examples=8)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda i, m, ig: (i[:, :-1], np.where(m[:, :-1], i[:, 1:], ig)), "the mask is off by one"),
        (lambda i, m, ig: (i[:, :-1], i[:, 1:]), "the prompt tokens are counted"),
        (lambda i, m, ig: (i[:, :-1], np.where(m[:, 1:], i[:, :-1], ig)), "the next tokens"),
        (lambda i, m, ig: (i[:, :-1], np.where(m[:, 1:], ig, i[:, 1:])), "the mask is inverted"),
        (lambda i, m, ig: (i[:, 1:], sft_targets(i, m, ig)[1]), "inputs are ids"),
        (lambda i, m, ig: sft_targets(i, m, ig)[1], "return a pair"),
    ],
)
def test_sft_target_mistakes_are_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        check_sft_targets(fn, max_examples=15)


def kept_nll(z, t, ig):
    return -(picked(z, t) * (t != ig)).sum()


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda z, t, ig: float(-picked(z, t).mean()), "the prompt tokens are counted"),
        (lambda z, t, ig: kept_nll(z, t, ig) / t.size, "not by B·T"),
        (lambda z, t, ig: kept_nll(z, t, ig), "that is the sum"),
        (lambda z, t, ig: kept_nll(z, t, ig) / (t != ig).sum(), "0/0"),
        (
            lambda z, t, ig: np.mean(-(picked(z, t) * (t != ig)).sum(1) / np.maximum((t != ig).sum(1), 1)),
            "averaged each row",
        ),
        (
            lambda z, t, ig: (
                -(np.take_along_axis(z, np.maximum(t, 0)[..., None], -1)[..., 0] * (t != ig)).sum()
                / max((t != ig).sum(), 1)
            ),
            "log_softmax",
        ),
    ],
)
def test_sft_loss_mistakes_are_named(fn, message):
    with np.errstate(invalid="ignore"), pytest.raises(AssertionError, match=message):
        check_sft_loss(fn, max_examples=20)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda z, t, ig: sequence_logprobs(z, t, ig) / np.maximum((t != ig).sum(-1), 1), "that is the mean"),
        (lambda z, t, ig: picked(z, t).sum(-1), "the ignored positions are counted"),
        (lambda z, t, ig: (picked(z, t, axis=1) * (t != ig)).sum(-1), "wrong axis"),
        (lambda z, t, ig: -sequence_logprobs(z, t, ig), "wrong sign"),
    ],
)
def test_sequence_logprob_mistakes_are_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        check_sequence_logprobs(fn, max_examples=15)


def dpo_with(margin, reduce=np.mean, outer=lambda m: np.logaddexp(0.0, -m)):
    return lambda pc, pr, rc, rr, beta: float(reduce(outer(margin(pc, pr, rc, rr, beta))))


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (dpo_with(margins, outer=lambda m: np.logaddexp(0.0, m)), "the sign is flipped"),
        (dpo_with(margins, outer=lambda m: -np.logaddexp(0.0, -m)), "the minus is missing"),
        (dpo_with(margins, reduce=np.sum), "the sum over pairs"),
        (dpo_with(lambda pc, pr, rc, rr, b: b * (pc - rc) - (pr - rr)), "chosen reply's log-ratio only"),
        (dpo_with(lambda pc, pr, rc, rr, b: b * (pc - pr)), "the reference π_ref is ignored"),
        (dpo_with(lambda pc, pr, rc, rr, b: b * ((pc + rc) - (pr + rr))), "π_ref is added"),
        (dpo_with(lambda pc, pr, rc, rr, b: (pc - rc) - (pr - rr)), "β is missing"),
        (dpo_with(margins, outer=lambda m: np.log(1 + np.exp(-m))), "overflowed"),
    ],
)
def test_dpo_loss_mistakes_are_named(fn, message):
    with np.errstate(over="ignore"), pytest.raises(AssertionError, match=message):
        check_dpo_loss(fn, max_examples=30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"frozen": False}, "π_ref is not frozen"), ({"sign": -1.0}, "the sign is flipped")],
)
def test_dpo_grad_mistakes_are_named(kwargs, message):
    with pytest.raises(AssertionError, match=message):
        check_dpo_grads(lambda *a: dpo_grads(*a, **kwargs), max_examples=8)


def test_dpo_grads_of_the_sum_are_named():
    def summed(pc, pr, rc, rr, beta):
        return tuple(g * len(pc) for g in dpo_grads(pc, pr, rc, rr, beta))

    with pytest.raises(AssertionError, match="gradient of the sum"):
        check_dpo_grads(summed, max_examples=8)


def test_numpy_in_dpo_grads_is_named():
    def numpy_inside(pc, pr, rc, rr, beta):
        return float(np.mean(np.asarray(pc))), pr, rc, rr

    with pytest.raises(AssertionError, match="does not run under jax.jit"):
        check_dpo_grads(numpy_inside, max_examples=3)
