"""minigpt.interpret.attribution: the parts sum to the logit (difference), the heads to the attention's output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.interpret import capture
from minigpt.interpret.attribution import attribute, head_results, logit_attribution
from minigpt.testing.strategies import config_and_tokens, seeds
from tests.test_interpret_capture import noisy_params


@settings(max_examples=25)
@given(config_and_tokens(llama=True), seeds(), st.data())
def test_the_parts_sum_to_the_logit_and_to_the_logit_difference(cfg_idx, seed, data):
    cfg, idx = cfg_idx
    params = noisy_params(cfg, seed)
    target = data.draw(st.integers(0, cfg.vocab_size - 1))
    contrast = data.draw(st.one_of(st.none(), st.integers(0, cfg.vocab_size - 1)))
    att = logit_attribution(params, idx, cfg, target, contrast)
    logits = ref.forward(params, idx, cfg)
    want = logits[..., target] - (0 if contrast is None else logits[..., contrast])
    np.testing.assert_array_equal(att.total, want)
    np.testing.assert_allclose(att.values.sum(0), want, rtol=1e-9, atol=1e-9)
    n_bias = (cfg.n_layer if cfg.bias else 0) + (1 if cfg.bias else 0)  # c_proj biases, ln_f's β
    assert len(att.names) == att.values.shape[0] == 1 + cfg.n_layer * (cfg.n_head + 1) + n_bias
    assert att.heads().shape == (cfg.n_layer, cfg.n_head, *idx.shape) and att.mlps().shape == (cfg.n_layer, *idx.shape)


@settings(max_examples=15)
@given(config_and_tokens(llama=True), seeds())
def test_the_heads_results_add_up_to_the_attention_output(cfg_idx, seed):
    """Σ_h z_h W_O[h] + b_O = attn.out, with each z_h W_O[h] computed here by a loop over columns of c_proj."""
    cfg, idx = cfg_idx
    params = noisy_params(cfg, seed)
    acts = capture(params, idx, cfg)
    for i, p in enumerate(params["h"]):
        z, w = acts[f"h.{i}.attn.z"], p["attn"]["c_proj"]["weight"]
        d = cfg.head_size
        loop = np.stack([z[:, h] @ w[h * d : (h + 1) * d] for h in range(cfg.n_head)], axis=1)  # (B, H, T, C)
        np.testing.assert_allclose(head_results(z, w), loop, rtol=1e-12, atol=1e-14)
        out = loop.sum(1) + p["attn"]["c_proj"].get("bias", 0.0)
        np.testing.assert_allclose(out, acts[f"h.{i}.attn.out"], rtol=1e-10, atol=1e-12)


def test_a_part_is_its_own_effect_when_the_final_norm_scale_is_frozen():
    """An independent view of one part's value: remove head 0 of the last block from the stream, keep the final
    norm's scale, and the target logit drops by exactly that head's share."""
    cfg = GPTConfig.preset("tiny")
    params = noisy_params(cfg, 3)
    idx = np.random.default_rng(3).integers(0, cfg.vocab_size, (1, 7))
    acts = capture(params, idx, cfg)
    att = attribute(acts, params, cfg, target=5)
    last = cfg.n_layer - 1
    stream = acts[f"h.{last}.resid_post"]
    head0 = head_results(acts[f"h.{last}.attn.z"], params["h"][last]["attn"]["c_proj"]["weight"])[:, 0]
    ln = params["ln_f"]

    def logit(x):  # LN_f with the scale of the full stream, then W_U's column of token 5
        y = (x - x.mean(-1, keepdims=True)) / np.sqrt(stream.var(-1, keepdims=True) + cfg.layer_norm_eps)
        return (y * ln["weight"] + ln["bias"]) @ params["wte"]["weight"][5]

    np.testing.assert_allclose(logit(stream) - logit(stream - head0), att.part(f"h.{last}.attn.head.0"), atol=1e-12)


def test_the_jax_twin_gives_the_same_attribution(x64):
    cfg = GPTConfig.preset("llama-tiny")
    params = noisy_params(cfg, 1)
    idx = np.random.default_rng(1).integers(0, cfg.vocab_size, (2, 6))
    a = logit_attribution(params, idx, cfg, 3, 4)
    b = logit_attribution(params, idx, cfg, 3, 4, backend="jax")
    assert a.names == b.names
    np.testing.assert_allclose(b.values, a.values, rtol=1e-9, atol=1e-12)


def test_bad_tokens_are_named():
    cfg = GPTConfig.preset("tiny")
    params, idx = ref.init_params(cfg), np.zeros((1, 2), np.int32)
    with pytest.raises(ValueError, match=r"target must be a token id in \[0, 64\), got 64"):
        logit_attribution(params, idx, cfg, 64)
    with pytest.raises(ValueError, match="contrast must be a token id"):
        logit_attribution(params, idx, cfg, 1, -1)
    with pytest.raises(KeyError, match="no part 'h.9.mlp'"):
        logit_attribution(params, idx, cfg, 1).part("h.9.mlp")
