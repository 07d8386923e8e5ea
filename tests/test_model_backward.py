"""loss_and_grads: the whole model's hand-written gradient against jax.grad of the Flax twin,
against finite differences, and the cached forward against reference.forward / reference.loss."""

from __future__ import annotations

import functools
import re

import jax
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt import reference as ref
from minigpt.params import flatten_params, map_params
from minigpt.reference.model_backward import model_forward

CFG = GPTConfig(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8)
CFG_NOBIAS = CFG.replace(bias=False, n_head=1)


@functools.cache
def jax_grad_fn(ignore_index: int):
    """jit(∂ model.loss / ∂ params) — one compilation per (shape, dtype), reused across examples."""

    @nnx.jit
    def grad_fn(model, idx, targets):
        return nnx.grad(lambda m: m.loss(idx, targets, ignore_index))(model)

    return grad_fn


def jax_grads(params, idx, targets, cfg, ignore_index=-1) -> dict:
    """∂L/∂θ from the Flax model, as dotted names → NumPy (nnx.Param paths are the layout names)."""
    model = GPT.from_params(params, cfg)
    state = jax_grad_fn(ignore_index)(model, idx, targets)
    return {".".join(map(str, path)): np.asarray(v[...]) for path, v in nnx.to_flat_state(state)}


def perturbed_params(cfg, seed, dtype):
    """init_params moved off its special values (LN γ=1, β=0, zero biases) so every gradient is generic."""
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, seed=seed, dtype=dtype)
    return map_params(lambda p: (p + 0.1 * rng.standard_normal(p.shape)).astype(dtype), params)


def make_batch(rng, cfg, B, T, n_ids, ignore_index, p_ignore):
    """Tokens drawn from only n_ids ids (so repeats are common); some targets set to ignore_index."""
    idx = rng.integers(0, n_ids, size=(B, T)).astype(np.int32)
    targets = rng.integers(0, cfg.vocab_size, size=(B, T)).astype(np.int32)
    drop = rng.random((B, T)) < p_ignore
    drop.flat[rng.integers(B * T)] = False  # at least one target counts
    return idx, np.where(drop, ignore_index, targets).astype(np.int32)


def rel_errors(ours: dict, theirs: dict) -> dict:
    assert ours.keys() == theirs.keys()
    return {k: np.linalg.norm(ours[k] - theirs[k]) / max(np.linalg.norm(theirs[k]), 1e-30) for k in ours}


# Fixed shapes per case (each new shape costs one JAX compilation); hypothesis varies everything else.
CASES = [
    pytest.param(CFG, 3, 5, id="B3-T5"),
    pytest.param(CFG, 1, 1, id="B1-T1"),
    pytest.param(CFG_NOBIAS, 2, 6, id="nobias-B2-T6-full-block"),
]


@pytest.mark.parametrize(("cfg", "B", "T"), CASES)
@settings(max_examples=4)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_ids=st.integers(1, 7),
    ignore_index=st.sampled_from([-1, -100]),
    p_ignore=st.sampled_from([0.0, 0.5]),
)
def test_grads_match_jax_float64(cfg, B, T, seed, n_ids, ignore_index, p_ignore):
    with jax.enable_x64(True):
        _check_float64(cfg, B, T, seed, n_ids, ignore_index, p_ignore)


def _check_float64(cfg, B, T, seed, n_ids, ignore_index, p_ignore):
    rng = np.random.default_rng(seed)
    params = perturbed_params(cfg, seed % 10_000, np.float64)
    idx, targets = make_batch(rng, cfg, B, T, n_ids, ignore_index, p_ignore)
    loss, grads = ref.loss_and_grads(params, idx, targets, cfg, ignore_index=ignore_index)
    ref.validate_grads(grads, cfg)
    flat = flatten_params(grads)
    assert all(g.dtype == np.float64 for g in flat.values())
    theirs = jax_grads(params, idx, targets, cfg, ignore_index)
    errs = rel_errors(flat, theirs)
    worst = max(errs, key=errs.get)
    assert errs[worst] < 1e-8, f"{worst}: relative error {errs[worst]:.2e}"
    np.testing.assert_allclose(loss, ref.loss(params, idx, targets, cfg, ignore_index), rtol=1e-14)


def test_grads_match_jax_float32():
    """float32: both sides round differently; stated tolerance 1e-5 relative per tensor (seen: ≤ 8e-7)."""
    rng = np.random.default_rng(7)
    params = perturbed_params(CFG, 7, np.float32)
    idx, targets = make_batch(rng, CFG, 3, 5, 3, -1, 0.3)
    loss, grads = ref.loss_and_grads(params, idx, targets, CFG)
    flat = flatten_params(grads)
    assert all(g.dtype == np.float32 for g in flat.values())
    assert loss.dtype == np.float32
    errs = rel_errors(flat, jax_grads(params, idx, targets, CFG))
    worst = max(errs, key=errs.get)
    assert errs[worst] < 1e-5, f"{worst}: relative error {errs[worst]:.2e}"


@pytest.mark.parametrize("cfg", [CFG, CFG_NOBIAS], ids=["bias", "nobias"])
def test_cached_forward_equals_reference(cfg):
    rng = np.random.default_rng(1)
    params = perturbed_params(cfg, 1, np.float64)
    idx, targets = make_batch(rng, cfg, 2, cfg.block_size, cfg.vocab_size, -1, 0.3)
    logits, _ = model_forward(params, idx, cfg)
    np.testing.assert_array_equal(logits, ref.forward(params, idx, cfg))
    loss, _ = ref.loss_and_grads(params, idx, targets, cfg)
    assert loss == ref.loss(params, idx, targets, cfg)


def test_whole_model_directional_derivative_float64():
    """Without JAX: ⟨∂L/∂θ, d⟩ against (L(θ + h d) − L(θ − h d)) / 2h along random directions d."""
    rng = np.random.default_rng(3)
    params = perturbed_params(CFG, 3, np.float64)
    idx, targets = make_batch(rng, CFG, 2, 4, 2, -1, 0.3)
    _, grads = ref.loss_and_grads(params, idx, targets, CFG)
    flat_g = flatten_params(grads)
    h = 1e-6
    for _ in range(3):
        d = {k: rng.standard_normal(v.shape) for k, v in flat_g.items()}
        shifted = [map_params(np.copy, params) for _ in (1, -1)]
        for s, q in zip((1, -1), shifted, strict=True):
            for name, arr in flatten_params(q).items():
                arr += s * h * d[name]
        numeric = (ref.loss(shifted[0], idx, targets, CFG) - ref.loss(shifted[1], idx, targets, CFG)) / (2 * h)
        analytic = sum(float(np.sum(flat_g[k] * d[k])) for k in d)
        assert abs(analytic - numeric) < 1e-6 * max(abs(analytic), 1e-3)


def test_tied_wte_gets_head_and_embedding_gradients():
    """Rows of wte for tokens absent from idx receive only the head's gradient (recomputed here
    independently); rows of tokens present in idx receive the embedding's scatter-add on top."""
    params = perturbed_params(CFG, 5, np.float64)
    idx = np.array([[0, 0, 1, 0]], dtype=np.int32)  # tokens 0 and 1 only; 0 repeated
    targets = np.array([[2, 3, 4, 5]], dtype=np.int32)
    _, grads = ref.loss_and_grads(params, idx, targets, CFG)
    # Recompute the head's share independently: dlogits = (softmax − onehot)/N, dwte_head = dlogitsᵀ h.
    logits = ref.forward(params, idx, CFG)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[0, np.arange(4), targets[0]] -= 1.0
    h = ref.hidden_states(params, idx, CFG)
    head = (p / 4).reshape(-1, CFG.vocab_size).T @ h.reshape(-1, CFG.n_embd)
    dwte = grads["wte"]["weight"]
    np.testing.assert_allclose(dwte[2:], head[2:], rtol=1e-10, atol=1e-14)  # absent tokens: head only
    assert np.linalg.norm(dwte[:2] - head[:2]) > 1e-3 * np.linalg.norm(head[:2])  # present: + embedding


def test_wpe_rows_past_T_get_zero_gradient():
    params = perturbed_params(CFG, 2, np.float64)
    idx = np.array([[1, 2, 3]], dtype=np.int32)
    _, grads = ref.loss_and_grads(params, idx, idx, CFG)
    assert np.all(grads["wpe"]["weight"][3:] == 0)
    assert np.all(np.linalg.norm(grads["wpe"]["weight"][:3], axis=-1) > 0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda g: g["h"][0]["attn"]["c_attn"].pop("bias"), "h.0.attn.c_attn.bias"),
        (lambda g: g["ln_f"].__setitem__("scale", np.zeros(8)), "ln_f.scale"),
        (lambda g: g["wpe"].__setitem__("weight", np.zeros((5, 8))), "wpe.weight"),
        (lambda g: g["h"].pop(), "h.1"),
    ],
    ids=["missing", "extra", "misshaped", "missing-block"],
)
def test_validate_grads_names_the_bad_entry(mutate, message):
    params = ref.init_params(CFG, dtype=np.float64)
    idx = np.array([[1, 2]], dtype=np.int32)
    _, grads = ref.loss_and_grads(params, idx, idx, CFG)
    ref.validate_grads(grads, CFG)
    mutate(grads)
    with pytest.raises(ValueError, match="gradient.*" + re.escape(message)):
        ref.validate_grads(grads, CFG)


def test_loss_and_grads_rejects_bad_input():
    params = ref.init_params(CFG, dtype=np.float64)
    idx = np.array([[1, 2]], dtype=np.int32)
    with pytest.raises(ValueError, match="out of range"):
        ref.loss_and_grads(params, np.array([[1, 9]]), idx, CFG)
    with pytest.raises(ValueError, match="ignore_index"):
        ref.loss_and_grads(params, idx, np.array([[-1, -1]]), CFG)
    with pytest.raises(ValueError, match="shape"):
        ref.loss_and_grads(params, idx, np.array([[1, 2, 3]]), CFG)
    params["h"][0]["mlp"]["c_fc"].pop("weight")
    with pytest.raises(ValueError, match=r"h\.0\.mlp\.c_fc\.weight"):
        ref.loss_and_grads(params, idx, idx, CFG)
