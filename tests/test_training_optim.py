"""minigpt.training.optim: the schedule's closed form, and the step's own clip against NumPy and optax."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.params import flatten_params, map_params, weight_decay_mask
from minigpt.reference.optim import clip_by_global_norm
from minigpt.training.config import TrainConfig
from minigpt.training.optim import clip_by_global_norm as train_clip
from minigpt.training.optim import global_norm as train_norm
from minigpt.training.optim import learning_rate, make_optimizer

CFG = GPTConfig(vocab_size=5, block_size=4, n_layer=2, n_head=2, n_embd=4)


@given(step=st.integers(0, 200), warmup=st.integers(0, 50), decay=st.integers(1, 150))
def test_learning_rate_matches_closed_form(step, warmup, decay):
    tcfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=warmup, lr_decay_steps=decay, progress=False)
    D = max(decay, warmup + 1)
    if step < warmup:
        expected = 1e-3 * (step + 1) / warmup
    elif step >= D:
        expected = 1e-4
    else:
        expected = 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * (step - warmup) / (D - warmup)))
    assert float(learning_rate(step, tcfg)) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert float(learning_rate(jnp.int32(step), tcfg)) == pytest.approx(expected, rel=1e-5, abs=1e-9)  # in Optax


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e2),
    max_norm=st.floats(0.1, 10.0),
    fused=st.booleans(),
)
def test_train_clip_matches_numpy_and_optax(seed, scale, max_norm, fused):
    rng = np.random.default_rng(seed)
    grads = map_params(lambda p: rng.standard_normal(p.shape) * scale, ref.init_params(CFG, dtype=np.float64))
    with jax.enable_x64():
        jgrads = jax.tree.map(jnp.asarray, grads)
        everything = np.concatenate([g.ravel() for g in flatten_params(grads).values()])
        assert math.isclose(float(train_norm(jgrads, fused)), float(np.linalg.norm(everything)), rel_tol=1e-12)
        ours, ours_state = train_clip(max_norm, fused).update(jgrads, train_clip(max_norm, fused).init(jgrads))
        theirs, theirs_state = optax.clip_by_global_norm(max_norm).update(jgrads, optax.EmptyState())
        expected, _ = clip_by_global_norm(grads, max_norm)  # the NumPy reference
    assert jax.tree.structure(ours_state) == jax.tree.structure(theirs_state)
    for name, g in flatten_params(expected).items():
        np.testing.assert_allclose(np.asarray(flatten_params(ours)[name]), g, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(np.asarray(flatten_params(theirs)[name]), g, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("fused_norm", [True, False])
def test_train_optimizer_state_is_optax_chains_so_checkpoints_still_load(fused_norm):
    tcfg = TrainConfig(grad_clip=1.0)
    params = jax.tree.map(jnp.asarray, ref.init_params(CFG, dtype=np.float32))
    ours = make_optimizer(tcfg, params, fused_norm).init(params)
    optax_chain = optax.chain(
        optax.clip_by_global_norm(tcfg.grad_clip),
        optax.adamw(lambda step: 1e-3, weight_decay=tcfg.weight_decay, mask=weight_decay_mask(params)),  # a schedule
    )
    theirs = optax_chain.init(params)
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    assert [np.shape(a) for a in jax.tree.leaves(ours)] == [np.shape(a) for a in jax.tree.leaves(theirs)]
