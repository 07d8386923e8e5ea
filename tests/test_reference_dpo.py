"""DPO: the loss against σ written out, its hand-written backward against finite differences, the JAX twin
against the reference in float64, and the properties: log 2 at the start, swap symmetry, a frozen reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import model as jm
from minigpt import reference as ref
from minigpt.params import flatten_params, map_params

CFG = GPTConfig(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8)

logps = (
    st.integers(1, 6)
    .flatmap(
        lambda n: st.tuples(*[st.lists(st.floats(-60, 0, allow_nan=False), min_size=n, max_size=n) for _ in range(4)])
    )
    .map(lambda t: tuple(np.array(x) for x in t))
)
betas = st.sampled_from([0.01, 0.1, 0.5, 2.0])


def sigmoid_written_out(m):
    return 1.0 / (1.0 + np.exp(-m))


@settings(max_examples=80, deadline=None)
@given(lp=logps, beta=betas)
def test_dpo_loss_is_minus_log_sigmoid_of_the_margin(lp, beta):
    pc, pr, rc, rr = lp
    m = beta * ((pc - rc) - (pr - rr))
    expected = np.mean(-np.log(sigmoid_written_out(m)))
    assert isinstance(ref.dpo_loss(*lp, beta), float)
    np.testing.assert_allclose(
        ref.dpo_loss(*lp, beta), expected, rtol=1e-12, atol=1e-14
    )  # the written-out σ rounds near 1


@settings(max_examples=40, deadline=None)
@given(lp=logps, beta=betas)
def test_dpo_backward_matches_finite_differences(lp, beta):
    d_pc, d_pr = ref.dpo_loss_backward(*lp, beta)
    h = 1e-6
    for which, analytic in ((0, d_pc), (1, d_pr)):
        for i in range(len(lp[0])):
            up, down = [x.copy() for x in lp], [x.copy() for x in lp]
            up[which][i] += h
            down[which][i] -= h
            numeric = (ref.dpo_loss(*up, beta) - ref.dpo_loss(*down, beta)) / (2 * h)
            assert abs(analytic[i] - numeric) < 1e-7 + 1e-6 * abs(numeric)


@settings(max_examples=30, deadline=None)
@given(lp=logps, beta=betas)
def test_jax_twin_equals_reference_float64(lp, beta):
    with jax.enable_x64(True):
        jlp = [jnp.asarray(x) for x in lp]
        np.testing.assert_allclose(float(jm.dpo_loss(*jlp, beta)), ref.dpo_loss(*lp, beta), rtol=1e-14)
        grads = jax.grad(lambda *a: jm.dpo_loss(*a, beta), argnums=(0, 1, 2, 3))(*jlp)
        for g, ours in zip(grads[:2], ref.dpo_loss_backward(*lp, beta), strict=True):
            np.testing.assert_allclose(np.asarray(g), ours, rtol=1e-12, atol=1e-300)
        assert all(np.all(np.asarray(g) == 0) for g in grads[2:])  # π_ref frozen: no gradient reaches it
        theirs = {k: float(v) for k, v in jm.dpo_metrics(*jlp, beta).items()}
    ours = ref.dpo_metrics(*lp, beta)
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert ours[k] == pytest.approx(theirs[k], rel=1e-12, abs=1e-12), k


@settings(max_examples=40, deadline=None)
@given(lp=logps, beta=betas)
def test_policy_equal_to_reference_gives_log_2_and_raises_chosen_lowers_rejected(lp, beta):
    pc, pr, _, _ = lp
    per_pair = ref.dpo_losses(pc, pr, pc, pr, beta)
    assert np.all(per_pair == math.log(2))  # exactly: m = 0 and softplus(0) = log 2
    assert ref.dpo_loss(pc, pr, pc, pr, beta) == pytest.approx(math.log(2), rel=1e-15)
    with jax.enable_x64(True):
        assert np.all(np.asarray(jm.dpo_losses(*map(jnp.asarray, (pc, pr, pc, pr)), beta)) == math.log(2))
    d_pc, d_pr = ref.dpo_loss_backward(pc, pr, pc, pr, beta)
    np.testing.assert_allclose(d_pc, -beta / 2 / len(pc), rtol=1e-15)  # a descent step raises log π(y_w)
    np.testing.assert_allclose(d_pr, beta / 2 / len(pc), rtol=1e-15)  # and lowers log π(y_l)


@settings(max_examples=40, deadline=None)
@given(lp=logps, beta=betas)
def test_swapping_chosen_and_rejected_negates_the_margin(lp, beta):
    pc, pr, rc, rr = lp
    np.testing.assert_array_equal(ref.dpo_margins(pr, pc, rr, rc, beta), -ref.dpo_margins(pc, pr, rc, rr, beta))
    acc = ref.dpo_metrics(pc, pr, rc, rr, beta)["reward_accuracy"]
    m = ref.dpo_margins(pc, pr, rc, rr, beta)
    assert acc == np.mean(m > 0) and ref.dpo_metrics(pr, pc, rr, rc, beta)["reward_accuracy"] == np.mean(m < 0)


def test_bad_inputs_are_refused():
    a = np.zeros(3)
    with pytest.raises(ValueError, match="one shape"):
        ref.dpo_loss(a, a, a, np.zeros(2), 0.1)
    with pytest.raises(ValueError, match="beta must be > 0"):
        ref.dpo_loss(a, a, a, a, 0.0)


# -- sequence log-probs and the whole model -------------------------------------------------------------
def params64(seed):
    rng = np.random.default_rng(seed)
    return map_params(lambda p: p + 0.1 * rng.standard_normal(p.shape), ref.init_params(CFG, seed, np.float64))


def masked_batch(rng, B=2, T=5):
    idx = rng.integers(0, CFG.vocab_size, size=(B, T)).astype(np.int32)
    targets = rng.integers(0, CFG.vocab_size, size=(B, T)).astype(np.int32)
    return idx, np.where(rng.random((B, T)) < 0.4, -1, targets).astype(np.int32)


def test_sequence_logprobs_sum_the_kept_targets_and_match_the_twin():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 5))
    targets = np.array([[1, -1, 2, 0], [-1, -1, -1, -1], [4, 4, 4, -1]])
    expected = [
        sum(np.log(np.exp(logits[b, t, y]) / np.exp(logits[b, t]).sum()) for t, y in enumerate(row) if y != -1)
        for b, row in enumerate(targets)
    ]
    np.testing.assert_allclose(ref.sequence_logprobs(logits, targets), expected, rtol=1e-13)
    with jax.enable_x64(True):
        np.testing.assert_allclose(jm.sequence_logprobs(jnp.asarray(logits), targets), expected, rtol=1e-13)
    dlogps = rng.standard_normal(3)
    analytic = ref.sequence_logprobs_backward(dlogps, logits, targets)
    h, numeric = 1e-6, np.zeros_like(logits)
    for i in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = dlogps @ (ref.sequence_logprobs(up, targets) - ref.sequence_logprobs(down, targets)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, atol=1e-8)


def test_whole_model_dpo_gradient_matches_finite_differences_and_jax():
    rng = np.random.default_rng(5)
    policy, reference = params64(5), params64(6)
    chosen, rejected = masked_batch(rng), masked_batch(rng)
    ref_c = ref.sequence_logprobs(ref.forward(reference, chosen[0], CFG), chosen[1])  # computed once, constants
    ref_r = ref.sequence_logprobs(ref.forward(reference, rejected[0], CFG), rejected[1])
    beta = 0.5

    def loss_of(p):
        pc = ref.sequence_logprobs(ref.forward(p, chosen[0], CFG), chosen[1])
        pr = ref.sequence_logprobs(ref.forward(p, rejected[0], CFG), rejected[1])
        return ref.dpo_loss(pc, pr, ref_c, ref_r, beta)

    loss, grads = ref.dpo_loss_and_grads(policy, chosen, rejected, ref_c, ref_r, CFG, beta)
    assert loss == pytest.approx(loss_of(policy), rel=1e-13)
    flat_g, h = flatten_params(grads), 1e-6
    d = {k: rng.standard_normal(v.shape) for k, v in flat_g.items()}
    shifted = []
    for s in (1, -1):
        q = map_params(np.copy, policy)
        for name, arr in flatten_params(q).items():
            arr += s * h * d[name]
        shifted.append(loss_of(q))
    analytic = sum(float(np.sum(flat_g[k] * d[k])) for k in d)
    assert abs(analytic - (shifted[0] - shifted[1]) / (2 * h)) < 1e-6 * max(abs(analytic), 1e-3)

    with jax.enable_x64(True):

        def jloss(p, reference_params):
            """π_ref's log-probs from params handed in as an argument: stop_gradient must keep them frozen."""
            lp = [
                jm.sequence_logprobs(jm.apply(q, x, CFG), y)
                for q in (p, reference_params)
                for x, y in (chosen, rejected)
            ]
            return jm.dpo_loss(lp[0], lp[1], lp[2], lp[3], beta)

        jp, jr = jm.jax_params(policy), jm.jax_params(reference)
        g_policy, g_ref = jax.grad(jloss, argnums=(0, 1))(jp, jr)
        np.testing.assert_allclose(float(jloss(jp, jr)), loss, rtol=1e-12)
        theirs = flatten_params(jax.tree.map(np.asarray, g_policy))
        for k in flat_g:
            np.testing.assert_allclose(theirs[k], flat_g[k], rtol=1e-8, atol=1e-13, err_msg=k)
        assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_ref))
