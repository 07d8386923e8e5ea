"""The NumPy LoRA: the adapted linear layer and its hand-written backward against central finite differences in
float64, merging against the unmerged layer, and the whole model's adapter gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import adapters as AD
from minigpt import reference as ref
from minigpt.config import GPTConfig
from minigpt.params import flatten_params, map_params, unflatten_params
from minigpt.reference import lora as L
from minigpt.testing.strategies import configs
from tests.test_functional_backward import numeric_grad


@st.composite
def layer_inputs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    d_in, d_out, r = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    bias = draw(st.booleans())
    x, W = rng.standard_normal((*lead, d_in)), rng.standard_normal((d_in, d_out))
    b = rng.standard_normal(d_out) if bias else None
    A, B = rng.standard_normal((d_in, r)), rng.standard_normal((r, d_out))  # B ≠ 0: a trained adapter
    return x, W, b, A, B, draw(st.sampled_from([0.5, 2.0, 16.0 / r])), rng.standard_normal((*lead, d_out))


@settings(max_examples=30)
@given(layer_inputs())
def test_lora_linear_backward_matches_finite_differences(example):
    x, W, b, A, B, s, dy = example
    y, cache = L.lora_linear_forward(x, W, b, A, B, s)
    np.testing.assert_allclose(y, x @ W + (0 if b is None else b) + s * x @ A @ B, rtol=1e-12, atol=1e-12)
    dx, dA, dB, dW, db = L.lora_linear_backward(dy, cache, base_grads=True)
    loss = lambda: float(np.sum(L.lora_linear(x, W, b, A, B, s) * dy))  # noqa: E731 - ∂loss/∂y = dy
    for got, wrt in ((dx, x), (dA, A), (dB, B), (dW, W)):
        np.testing.assert_allclose(got, numeric_grad(loss, wrt), rtol=1e-6, atol=1e-7)
    if b is not None:
        np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-6, atol=1e-7)
    assert len(L.lora_linear_backward(dy, cache)) == 3  # the frozen base's gradients only when asked


@settings(max_examples=30)
@given(layer_inputs())
def test_merge_equals_the_unmerged_layer(example):
    x, W, b, A, B, s, _ = example
    merged = x @ L.merge(W, A, B, s) + (0 if b is None else b)
    np.testing.assert_allclose(merged, L.lora_linear(x, W, b, A, B, s), rtol=1e-12, atol=1e-12)


def test_init_is_zero_B_and_kaiming_A():
    cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=2, n_head=2, n_embd=64)
    spec = AD.LoraSpec(8, 16.0, "c_attn,c_fc")
    flat = flatten_params(AD.init_adapters(cfg, spec, seed=3, dtype=np.float64))
    assert sorted(flat) == sorted(AD.adapter_shapes(cfg, spec))
    assert all(np.all(v == 0) for k, v in flat.items() if k.endswith(".B"))
    a = np.concatenate([v.ravel() for k, v in flat.items() if k.endswith(".A")])
    assert abs(a.std() - 1 / np.sqrt(64)) < 0.01  # σ² = 1/in, in = n_embd for both targets
    params = ref.init_params(cfg, seed=0, dtype=np.float64)
    idx = np.arange(8).reshape(2, 4) % 5
    got = L.forward_with_adapters(params, unflatten_params(flat), spec.scale, idx, cfg)
    assert np.array_equal(got, ref.forward(params, idx, cfg))  # B = 0: exactly the base model


@st.composite
def model_and_adapters(draw):
    cfg = draw(configs(max_layers=2, max_heads=2, max_head_size=3, max_vocab=7, max_block=4, llama=True))
    targets = draw(st.lists(st.sampled_from(AD.TARGET_NAMES), min_size=1, max_size=3))
    if cfg.mlp != "swiglu":
        targets = [t for t in targets if "c_gate" not in t] or ["c_attn"]
    spec = AD.LoraSpec(draw(st.integers(1, 2)), draw(st.sampled_from([1.0, 4.0])), ",".join(targets))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = map_params(lambda p: p + 0.1 * rng.standard_normal(p.shape), ref.init_params(cfg, 0, np.float64))
    adapters = map_params(lambda a: a + 0.3 * rng.standard_normal(a.shape), AD.init_adapters(cfg, spec, 1, np.float64))
    idx = rng.integers(0, cfg.vocab_size, (2, cfg.block_size))
    return cfg, spec, params, adapters, idx, rng.integers(0, cfg.vocab_size, (2, cfg.block_size))


@settings(max_examples=8)
@given(model_and_adapters())
def test_whole_model_adapter_grads_match_finite_differences(example):
    cfg, spec, params, adapters, idx, targets = example
    loss, grads = L.loss_and_adapter_grads(params, adapters, spec.scale, idx, targets, cfg)
    flat, g = flatten_params(adapters), flatten_params(grads)
    assert sorted(g) == sorted(flat)  # the adapters' gradients and nothing else

    def f():
        return float(ref.loss(L.merge_params(params, unflatten_params(flat), spec.scale), idx, targets, cfg))

    assert np.isclose(float(loss), f(), rtol=1e-12)
    for name, value in flat.items():
        np.testing.assert_allclose(g[name], numeric_grad(f, value), rtol=1e-5, atol=1e-8, err_msg=name)


def test_unmerged_layer_backward_equals_the_merged_chain_rule():
    rng = np.random.default_rng(0)
    x, W, A, B, dy = (rng.standard_normal(s) for s in ((3, 4, 5), (5, 6), (5, 2), (2, 6), (3, 4, 6)))
    _, dA, dB = L.lora_linear_backward(dy, L.lora_linear_forward(x, W, None, A, B, 1.5)[1])
    dW = np.einsum("abi,abo->io", x, dy)
    via = flatten_params(L.merged_to_adapter_grads({"l": {"weight": dW}}, {"l": {"A": A, "B": B}}, 1.5))
    np.testing.assert_allclose(via["l.A"], dA, rtol=1e-12)
    np.testing.assert_allclose(via["l.B"], dB, rtol=1e-12)


@pytest.mark.parametrize(
    ("targets", "message"),
    [("c_attn,q_proj", "unknown LoRA target 'q_proj'; valid targets: c_attn, c_proj"), (" , ", "at least one")],
)
def test_bad_targets_are_named(targets, message):
    with pytest.raises(ValueError, match=message):
        AD.parse_targets(targets)


def test_short_names_expand_and_c_gate_needs_swiglu():
    assert AD.parse_targets("c_proj") == ("attn.c_proj", "mlp.c_proj")
    assert AD.parse_targets("mlp.c_proj,c_attn") == ("attn.c_attn", "mlp.c_proj")
    cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4)
    with pytest.raises(ValueError, match="c_gate exists only with mlp='swiglu'"):
        AD.LoraSpec(2, 1.0, "c_gate").layers(cfg)
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        AD.LoraSpec(0, 1.0, "c_attn")
