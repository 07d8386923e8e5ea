"""SFT loss: the masked NLL against an explicit per-token sum, its hand-written gradient against finite
differences, the JAX twin against the reference in float64, and the all-masked batch (0, zero gradients)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import model as jm
from minigpt import reference as ref
from minigpt.params import flatten_params, map_params

CFG = GPTConfig(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8)
B, T = 3, 5


def params64(seed: int):
    rng = np.random.default_rng(seed)
    return map_params(lambda p: p + 0.1 * rng.standard_normal(p.shape), ref.init_params(CFG, seed, np.float64))


def chat_batch(seed: int, p_mask: float, ignore_index: int = -1):
    """ids (B, T+1) and a random reply mask, turned into (inputs, targets) by sft_targets."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, CFG.vocab_size, size=(B, T + 1)).astype(np.int32)
    mask = rng.random((B, T + 1)) < p_mask
    return ids, mask, *ref.sft_targets(ids, mask, ignore_index)


def explicit_sft_loss(params, ids, mask) -> float:
    """Σ over reply tokens t ≥ 1 of −log P(ids_t | ids_<t), over their count: one prefix forward per token."""
    total, n = 0.0, 0
    for b in range(ids.shape[0]):
        for t in range(1, ids.shape[1]):
            if mask[b, t]:
                z = ref.forward(params, ids[b : b + 1, :t], CFG)[0, -1]  # logits after the prefix ids_<t
                total -= z[ids[b, t]] - np.log(np.sum(np.exp(z - z.max()))) - z.max()
                n += 1
    return total / max(n, 1)


def test_sft_targets_mask_the_predicted_token():
    ids = np.array([[10, 11, 12, 13]])
    mask = np.array([[False, False, True, True]])
    inputs, targets = ref.sft_targets(ids, mask, ignore_index=-100)
    np.testing.assert_array_equal(inputs, [[10, 11, 12]])
    np.testing.assert_array_equal(targets, [[-100, 12, 13]])  # position 1 predicts 12, the first reply token
    with pytest.raises(ValueError, match="must both be"):
        ref.sft_targets(ids, mask[:, :3])


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), p_mask=st.sampled_from([0.0, 0.3, 1.0]), ignore_index=st.sampled_from([-1, -100]))
def test_sft_loss_is_the_mean_nll_of_reply_tokens(seed, p_mask, ignore_index):
    params = params64(seed)
    ids, mask, inputs, targets = chat_batch(seed, p_mask, ignore_index)
    loss = ref.sft_loss(params, inputs, targets, CFG, ignore_index)
    np.testing.assert_allclose(loss, explicit_sft_loss(params, ids, mask), rtol=1e-12, atol=1e-15)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), p_mask=st.sampled_from([0.0, 0.4]))
def test_sft_grads_match_finite_differences(seed, p_mask):
    params = params64(seed)
    _, _, inputs, targets = chat_batch(seed, p_mask)
    _, grads = ref.sft_loss_and_grads(params, inputs, targets, CFG)
    flat_g = flatten_params(grads)
    rng, h = np.random.default_rng(seed), 1e-6
    d = {k: rng.standard_normal(v.shape) for k, v in flat_g.items()}
    shifted = []
    for s in (1, -1):
        q = map_params(np.copy, params)
        for name, arr in flatten_params(q).items():
            arr += s * h * d[name]
        shifted.append(float(ref.sft_loss(q, inputs, targets, CFG)))
    numeric = (shifted[0] - shifted[1]) / (2 * h)
    analytic = sum(float(np.sum(flat_g[k] * d[k])) for k in d)
    assert abs(analytic - numeric) < 1e-6 * max(abs(analytic), 1e-3)


@functools.cache
def jax_loss_and_grad(ignore_index: int):
    return jax.jit(jax.value_and_grad(lambda p, x, y: jm.sft_loss(p, x, y, CFG, ignore_index)))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), p_mask=st.sampled_from([0.0, 0.3, 1.0]), ignore_index=st.sampled_from([-1, -100]))
def test_jax_twin_equals_reference_float64(seed, p_mask, ignore_index):
    params = params64(seed)
    _, _, inputs, targets = chat_batch(seed, p_mask, ignore_index)
    loss, grads = ref.sft_loss_and_grads(params, inputs, targets, CFG, ignore_index)
    with jax.enable_x64(True):
        jloss, jgrads = jax_loss_and_grad(ignore_index)(jm.jax_params(params), inputs, targets)
        np.testing.assert_allclose(float(jloss), loss, rtol=1e-12, atol=1e-15)
        ours, theirs = flatten_params(grads), flatten_params(jax.tree.map(np.asarray, jgrads))
        for k in ours:
            np.testing.assert_allclose(theirs[k], ours[k], rtol=1e-8, atol=1e-13, err_msg=k)


def test_all_masked_batch_gives_zero_loss_and_zero_grads_in_both_twins():
    params = params64(0)
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, size=(B, T + 1)).astype(np.int32)
    inputs, targets = ref.sft_targets(ids, np.zeros_like(ids, dtype=bool))
    assert np.all(targets == -1)
    loss, grads = ref.sft_loss_and_grads(params, inputs, targets, CFG)
    assert loss == 0.0 and ref.sft_loss(params, inputs, targets, CFG) == 0.0
    assert all(np.all(g == 0) for g in flatten_params(grads).values())
    with jax.enable_x64(True):
        jloss, jgrads = jax_loss_and_grad(-1)(jm.jax_params(params), inputs, targets)
        assert float(jloss) == 0.0
        assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(jgrads))
    with jax.enable_x64(False):  # float32 as in training: still 0, not NaN
        p32 = map_params(lambda p: p.astype(np.float32), params)
        jloss, jgrads = jax.value_and_grad(lambda p: jm.sft_loss(p, inputs, targets, CFG))(p32)
        assert float(jloss) == 0.0 and all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(jgrads))


def test_counting_prompt_targets_changes_the_loss():
    """The mask matters: the same batch with every prompt target counted too has another loss."""
    params = params64(1)
    _, _, inputs, targets = chat_batch(1, 0.5)
    assert np.any(targets == -1) and np.any(targets != -1)
    full = np.where(targets == -1, 3, targets)  # the same batch with every prompt target counted too
    assert ref.sft_loss(params, inputs, targets, CFG) != ref.sft_loss(params, inputs, full, CFG)


def test_bad_targets_are_refused():
    params = params64(2)
    _, _, inputs, targets = chat_batch(2, 0.5)
    with pytest.raises(ValueError, match="out of range"):
        ref.sft_loss(params, inputs, np.where(targets == -1, 99, targets), CFG)
    with pytest.raises(ValueError, match="must match"):
        ref.sft_loss(params, inputs, targets[:, :-1], CFG)
