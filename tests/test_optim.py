"""NumPy AdamW + global-norm clipping against Optax, step for step, on the same gradients."""

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
from minigpt.reference.optim import AdamW, clip_by_global_norm, global_norm

CFG = GPTConfig(vocab_size=5, block_size=4, n_layer=2, n_head=2, n_embd=4)


def random_grads(rng, params, scale):
    return map_params(lambda p: rng.standard_normal(p.shape) * scale, params)


@settings(max_examples=4)
@given(
    seed=st.integers(0, 2**31 - 1),
    lr=st.sampled_from([1e-3, 3e-2]),
    b2=st.sampled_from([0.95, 0.999]),
    weight_decay=st.sampled_from([0.0, 0.1]),
    max_norm=st.sampled_from([0.5, 3.0]),
)
def test_adamw_matches_optax_step_for_step(seed, lr, b2, weight_decay, max_norm):
    rng = np.random.default_rng(seed)
    params = ref.init_params(CFG, seed=seed % 1000, dtype=np.float64)
    b1, eps, steps = 0.9, 1e-8, 5
    # Gradient scales around max_norm's threshold: some steps are clipped, some are not.
    grads_seq = [random_grads(rng, params, scale) for scale in (0.01, 0.2, 0.02, 1.0, 0.05)]
    opt = AdamW(CFG, lr=lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, max_grad_norm=max_norm)
    state = opt.init(params)
    ours = [params]
    for g in grads_seq:
        p, state, _ = opt.update(ours[-1], g, state)
        ours.append(p)
    assert state.step == steps
    with jax.enable_x64(True):
        tx = optax.chain(
            optax.clip_by_global_norm(max_norm),
            optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask(params)),
        )
        theirs = jax.tree.map(jnp.asarray, params)
        opt_state = tx.init(theirs)
        for t, g in enumerate(grads_seq, start=1):
            updates, opt_state = tx.update(jax.tree.map(jnp.asarray, g), opt_state, theirs)
            theirs = optax.apply_updates(theirs, updates)
            a, b = flatten_params(ours[t]), flatten_params(theirs)
            for name in a:
                np.testing.assert_allclose(a[name], np.asarray(b[name]), rtol=1e-12, atol=1e-15, err_msg=name)


def test_weight_decay_only_touches_linear_matrices():
    """With zero gradients Adam's step is 0, so a parameter moves only by decay: θ ← θ(1 − ηλ)."""
    params = ref.init_params(CFG, seed=1, dtype=np.float64)
    zeros = map_params(np.zeros_like, params)
    opt = AdamW(CFG, lr=0.1, weight_decay=0.5, max_grad_norm=None)
    new, _, norm = opt.update(params, zeros, opt.init(params))
    assert norm == 0.0
    for name, p in flatten_params(params).items():
        decayed = name.endswith(".weight") and (".attn." in name or ".mlp." in name)
        expected = p * (1 - 0.1 * 0.5) if decayed else p
        np.testing.assert_allclose(flatten_params(new)[name], expected, rtol=1e-15, err_msg=name)


def test_first_step_is_lr_times_sign():
    """At t = 1, m̂ = g and v̂ = g², so the Adam step is η g/(|g| + ε) ≈ η sign(g)."""
    rng = np.random.default_rng(2)
    params = ref.init_params(CFG, seed=2, dtype=np.float64)
    grads = random_grads(rng, params, 1.0)
    opt = AdamW(CFG, lr=0.01, eps=1e-12, weight_decay=0.0, max_grad_norm=None)
    new, _, _ = opt.update(params, grads, opt.init(params))
    for name, g in flatten_params(grads).items():
        step = flatten_params(params)[name] - flatten_params(new)[name]
        np.testing.assert_allclose(step, 0.01 * np.sign(g), rtol=1e-9)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e2), max_norm=st.floats(0.1, 10.0))
def test_clip_by_global_norm(seed, scale, max_norm):
    rng = np.random.default_rng(seed)
    params = ref.init_params(CFG, dtype=np.float64)
    grads = random_grads(rng, params, scale)
    everything = np.concatenate([g.ravel() for g in flatten_params(grads).values()])
    true_norm = float(np.sqrt(np.sum(everything**2)))
    clipped, norm = clip_by_global_norm(grads, max_norm)
    assert math.isclose(norm, true_norm, rel_tol=1e-12)
    assert math.isclose(global_norm(clipped), min(true_norm, max_norm), rel_tol=1e-12)
    factor = min(1.0, max_norm / true_norm)
    for name, g in flatten_params(grads).items():
        np.testing.assert_allclose(flatten_params(clipped)[name], g * factor, rtol=1e-12)


def test_float32_stays_float32():
    params = ref.init_params(CFG, dtype=np.float32)
    grads = random_grads(np.random.default_rng(0), params, 1.0)  # float64 grads for float32 params
    opt = AdamW(CFG)
    new, state, _ = opt.update(params, grads, opt.init(params))
    for tree in (new, state.m, state.v):
        assert {a.dtype for a in flatten_params(tree).values()} == {np.dtype(np.float32)}


def test_update_does_not_modify_its_inputs():
    rng = np.random.default_rng(3)
    params = ref.init_params(CFG, dtype=np.float64)
    grads = random_grads(rng, params, 1.0)
    before = {k: v.copy() for k, v in flatten_params(params).items()}
    opt = AdamW(CFG)
    opt.update(params, grads, opt.init(params))
    for k, v in flatten_params(params).items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize(
    ("mutate", "name"),
    [
        (lambda g: g["h"][1]["mlp"]["c_proj"].pop("bias"), "h.1.mlp.c_proj.bias"),
        (lambda g: g.__setitem__("lm_head", {"weight": np.zeros((5, 4))}), "lm_head.weight"),
        (lambda g: g["h"][0]["ln_2"].__setitem__("weight", np.zeros(3)), "h.0.ln_2.weight"),
    ],
    ids=["missing", "extra", "misshaped"],
)
def test_update_rejects_bad_gradient_dict(mutate, name):
    params = ref.init_params(CFG, dtype=np.float64)
    grads = map_params(np.zeros_like, params)
    mutate(grads)
    opt = AdamW(CFG)
    with pytest.raises(ValueError, match=r"gradient.*" + name.replace(".", r"\.")):
        opt.update(params, grads, opt.init(params))


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": 0.0}, {"b1": 1.0}, {"b2": -0.1}, {"eps": 0.0}, {"weight_decay": -1.0}, {"max_grad_norm": 0.0}],
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AdamW(CFG, **kwargs)
    if "max_grad_norm" in kwargs:
        with pytest.raises(ValueError, match="max_norm"):
            clip_by_global_norm(ref.init_params(CFG), 0.0)
