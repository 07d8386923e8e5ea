"""minigpt.interpret.capture: one naming scheme for both twins, every activation equal in float64, logits untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.interpret import activation_names, capture, time_axis
from minigpt.model import from_params
from minigpt.params import map_params
from minigpt.testing.strategies import configs, seeds, token_batches

logits_fn = nnx.jit(lambda m, i: m(i))


def noisy_params(cfg: GPTConfig, seed: int, dtype=np.float64):
    """GPT-2's init plus noise on every tensor, so that norm gains, biases and every weight matter."""
    rng = np.random.default_rng(seed)
    return map_params(lambda a: (a + 0.1 * rng.standard_normal(a.shape)).astype(dtype), ref.init_params(cfg, seed))


def expected_shape(name: str, cfg: GPTConfig, B: int, T: int) -> tuple[int, ...]:
    """The shape the module docstring promises, written out independently of the code."""
    C, H, d, V, F = cfg.n_embd, cfg.n_head, cfg.head_size, cfg.vocab_size, cfg.mlp_width
    last = name.split(".", 2)[-1] if name.startswith("h.") else name
    return {
        "attn.q": (B, H, T, d),
        "attn.k": (B, cfg.kv_heads, T, d),
        "attn.v": (B, cfg.kv_heads, T, d),
        "attn.weights": (B, H, T, T),
        "attn.z": (B, H, T, d),
        "mlp.act": (B, T, F),
        "logits": (B, T, V),
    }.get(last, (B, T, C))


@settings(max_examples=12)
@given(
    st.booleans()
    .flatmap(lambda llama: configs(llama=llama))
    .flatmap(lambda c: st.tuples(st.just(c), token_batches(c))),
    seeds(),
)
def test_every_captured_activation_agrees_between_the_twins_float64(x64, cfg_idx, seed):
    cfg, idx = cfg_idx
    params = noisy_params(cfg, seed)
    acts = capture(params, idx, cfg)
    jacts = capture(params, idx, cfg, backend="jax")
    names = activation_names(cfg)
    assert list(acts) == names and list(jacts) == names
    B, T = idx.shape
    for name in names:
        assert acts[name].shape == jacts[name].shape == expected_shape(name, cfg, B, T), name
        assert acts[name].dtype == jacts[name].dtype == np.float64, name
        np.testing.assert_allclose(jacts[name], acts[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # capturing changes no logits: those of an ordinary forward pass, bit for bit in NumPy
    np.testing.assert_array_equal(acts["logits"], ref.forward(params, idx, cfg))
    np.testing.assert_allclose(jacts["logits"], np.asarray(logits_fn(from_params(params, cfg), idx)), rtol=1e-13)


@settings(max_examples=10)
@given(configs(llama=True), seeds())
def test_the_names_say_what_the_values_are(cfg, seed):
    """The residual stream's bookkeeping, checked on the NumPy capture: in + attn = mid, mid + mlp = out, the next
    block's input is this block's output, the first is wte (+ wpe), and attention rows sum to one."""
    params = noisy_params(cfg, seed)
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (2, cfg.block_size))
    acts = capture(params, idx, cfg)
    emb = params["wte"]["weight"][idx] + (params["wpe"]["weight"][: idx.shape[1]] if cfg.pos == "learned" else 0)
    np.testing.assert_array_equal(acts["h.0.resid_pre"], emb)
    for i in range(cfg.n_layer):
        h = f"h.{i}."
        np.testing.assert_allclose(acts[h + "resid_pre"] + acts[h + "attn.out"], acts[h + "resid_mid"], atol=1e-12)
        np.testing.assert_allclose(acts[h + "resid_mid"] + acts[h + "mlp.out"], acts[h + "resid_post"], atol=1e-12)
        np.testing.assert_allclose(acts[h + "attn.weights"].sum(-1), 1.0, atol=1e-12)
        if i + 1 < cfg.n_layer:
            np.testing.assert_array_equal(acts[f"h.{i + 1}.resid_pre"], acts[h + "resid_post"])
    assert time_axis("h.0.attn.z") == 2 and time_axis("h.0.resid_pre") == 1 and time_axis("logits") == 1


def test_outside_a_capture_the_model_records_nothing():
    cfg = GPTConfig.preset("llama-tiny")
    model = from_params(ref.init_params(cfg), cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Module.sow outside nnx.capture would warn (and keep the value)
        model(np.zeros((1, 3), np.int32))
    assert not nnx.to_flat_state(nnx.state(model, nnx.Intermediate))


def test_bad_arguments_are_named():
    cfg = GPTConfig.preset("tiny")
    params, idx = ref.init_params(cfg), np.zeros((1, 3), np.int32)
    with pytest.raises(ValueError, match="backend must be one of"):
        capture(params, idx, cfg, backend="torch")
    with pytest.raises(ValueError, match=r"cannot patch unknown activation\(s\) \['h.9.resid_pre'\]"):
        capture(params, idx, cfg, patch={"h.9.resid_pre": (np.zeros(1), np.ones(1, bool))})
    with pytest.raises(ValueError, match="enable_x64"):
        with jax.enable_x64(False):
            capture(noisy_params(cfg, 0), idx, cfg, backend="jax")


def test_the_numpy_backend_needs_no_jax():
    """In a process where ``import jax`` fails, the NumPy side of every tool works (``backend="numpy"``)."""
    script = r"""
import importlib.abc, sys

class NoJax(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"jax", "jaxlib", "flax", "optax", "orbax"}:
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, NoJax())
import numpy as np
from minigpt import GPTConfig, interpret
from minigpt import reference as ref

cfg = GPTConfig.preset("tiny")
params = ref.init_params(cfg, seed=0)
a, b = np.array([[1, 2, 3, 4]]), np.array([[1, 5, 3, 4]])
assert len(interpret.capture(params, a, cfg)) == len(interpret.activation_names(cfg))
assert interpret.logit_lens(params, a, cfg).shape == (3, 1, 4, 64)
assert interpret.logit_attribution(params, a, cfg, 3, 4).values.shape[1:] == (1, 4)
assert interpret.patching_sweep(params, a, b, cfg, target=3, contrast=4).shape == (2, 1, 4)
assert "jax" not in sys.modules
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
