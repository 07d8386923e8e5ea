"""LoRA in the JAX model: unmerged (x W + s (x A) B) against merged (W + s A B) logits in float64 to 1e-12, both
against the NumPy reference, and jax.grad with respect to the adapters against the hand-written reference grads."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import adapters as AD
from minigpt import reference as ref
from minigpt.config import GPTConfig
from minigpt.model import GPT, apply, cross_entropy, lora
from minigpt.params import flatten_params, map_params
from minigpt.reference import lora as RL
from minigpt.testing.strategies import configs


@st.composite
def adapted(draw, llama: bool):
    cfg = draw(configs(max_layers=2, max_heads=2, max_head_size=4, max_vocab=11, max_block=5, llama=llama))
    cfg = cfg.replace(n_embd=2 * cfg.n_embd) if cfg.n_embd == 1 else cfg  # C = 1: LayerNorm outputs 0
    names = list(AD.TARGET_NAMES if cfg.mlp == "swiglu" else [t for t in AD.TARGET_NAMES if "c_gate" not in t])
    spec = AD.LoraSpec(draw(st.integers(1, 3)), draw(st.sampled_from([1.0, 8.0])), draw(st.sampled_from(names)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = map_params(lambda p: p + 0.1 * rng.standard_normal(p.shape), ref.init_params(cfg, 0, np.float64))
    adapters = map_params(lambda a: a + 0.2 * rng.standard_normal(a.shape), AD.init_adapters(cfg, spec, 1, np.float64))
    idx = rng.integers(0, cfg.vocab_size, (2, cfg.block_size))
    return cfg, spec, params, adapters, idx


def both_forwards(cfg: GPTConfig, scale: float):
    """(unmerged, merged) logits in one jit: one compile per drawn config (eager ops cost more at these sizes)."""

    def f(params, adapters, idx):
        unmerged = apply(params, idx, cfg, lora=adapters, lora_scale=scale, fast=False)
        return unmerged, apply(lora.merge(params, adapters, scale), idx, cfg, fast=False)

    return jax.jit(f)


@settings(max_examples=6)
@given(st.booleans().flatmap(adapted))
def test_merged_and_unmerged_logits_agree_in_float64_and_match_the_reference(x64, example):
    cfg, spec, params, adapters, idx = example
    unmerged, merged = map(np.asarray, both_forwards(cfg, spec.scale)(params, adapters, idx))
    np.testing.assert_allclose(unmerged, merged, rtol=1e-12, atol=1e-12)
    want = RL.forward_with_adapters(params, adapters, spec.scale, idx, cfg)
    np.testing.assert_allclose(unmerged, want, rtol=1e-10, atol=1e-12)
    assert not np.allclose(want, ref.forward(params, idx, cfg))  # the adapters do change the logits


LLAMA = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=4, n_embd=8, bias=False, pos="rope",
                  norm="rmsnorm", mlp="swiglu", n_kv_head=2, tie_embeddings=False)  # fmt: skip


GPT2 = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8)


@pytest.mark.parametrize(("cfg", "targets"), [(GPT2, "c_attn,c_proj,c_fc"), (LLAMA, "c_gate,c_proj")])
def test_adapter_gradients_match_the_hand_written_reference(x64, cfg, targets):
    spec = AD.LoraSpec(2, 4.0, targets)
    rng = np.random.default_rng(0)
    params = map_params(lambda p: p + 0.1 * rng.standard_normal(p.shape), ref.init_params(cfg, 0, np.float64))
    adapters = map_params(lambda a: a + 0.2 * rng.standard_normal(a.shape), AD.init_adapters(cfg, spec, 1, np.float64))
    idx = rng.integers(0, cfg.vocab_size, (2, cfg.block_size))
    targets_ids = np.roll(idx, -1, axis=1)

    def loss(a):
        logits = apply(params, idx, cfg, lora=a, lora_scale=spec.scale, fast=False)
        return cross_entropy(logits, targets_ids)

    got = flatten_params(jax.jit(jax.grad(loss))(adapters))
    _, want = RL.loss_and_adapter_grads(params, adapters, spec.scale, idx, targets_ids, cfg)
    want = flatten_params(want)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_attach_on_a_module_makes_the_adapters_its_only_adapter_state(x64):
    cfg = GPTConfig(vocab_size=9, block_size=4, n_layer=2, n_head=2, n_embd=8)
    spec = AD.LoraSpec(2, 4.0, "c_attn,mlp.c_proj")
    params = ref.init_params(cfg, 0, np.float64)
    adapters = map_params(lambda a: a + 0.5, AD.init_adapters(cfg, spec, 0, np.float64))
    model = lora.attach(GPT.from_params(params, cfg), adapters, spec.scale)
    state = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(model, lora.Adapter))}
    assert sorted(state) == sorted(f"{n[:-2]}.lora_{n[-1]}" for n in AD.adapter_shapes(cfg, spec))
    idx = np.arange(8).reshape(2, 4) % 9
    np.testing.assert_allclose(
        np.asarray(model(idx)), RL.forward_with_adapters(params, adapters, spec.scale, idx, cfg), rtol=1e-12, atol=1e-14
    )
    assert len(nnx.to_flat_state(nnx.state(model, nnx.Param))) == len(flatten_params(params))  # base only


def test_apply_without_scale_is_refused():
    cfg = GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=1, n_embd=4)
    spec = AD.LoraSpec(1, 1.0, "c_attn")
    try:
        apply(ref.init_params(cfg), np.zeros((1, 4), int), cfg, lora=AD.init_adapters(cfg, spec))
    except ValueError as e:
        assert "lora_scale" in str(e)
    else:
        raise AssertionError("apply(lora=...) without lora_scale must be refused")
