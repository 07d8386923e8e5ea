"""minigpt.interpret.lens: the residual stream after l blocks, read out, is the logits of the first l blocks alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from minigpt import reference as ref
from minigpt.interpret import capture, logit_lens
from minigpt.testing.strategies import config_and_tokens, seeds
from tests.test_interpret_capture import noisy_params


def truncated(params, cfg, n_layer):
    """The same model with only its first ``n_layer`` blocks (and its own final norm and head)."""
    return {**params, "h": params["h"][:n_layer]}, cfg.replace(n_layer=n_layer)


def by_hand_readout(params, cfg, h):
    """LN_f(h) · W_U written out in float64 from the formulas, independently of the reference's functions."""
    p = params["ln_f"]
    if cfg.norm == "layernorm":
        y = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + cfg.layer_norm_eps)
    else:
        y = h / np.sqrt((h * h).mean(-1, keepdims=True) + cfg.layer_norm_eps)
    y = y * p["weight"] + p.get("bias", 0.0)
    return y @ (params["wte"]["weight"].T if cfg.tie_embeddings else params["lm_head"]["weight"])


@settings(max_examples=15)
@given(config_and_tokens(llama=True), seeds())
def test_the_lens_at_block_l_is_the_logits_of_the_first_l_blocks(cfg_idx, seed):
    cfg, idx = cfg_idx
    params = noisy_params(cfg, seed)
    lens = logit_lens(params, idx, cfg)
    assert lens.shape == (cfg.n_layer + 1, *idx.shape, cfg.vocab_size)
    np.testing.assert_array_equal(lens[-1], ref.forward(params, idx, cfg))  # exactly the model's logits
    for n in range(1, cfg.n_layer):
        first_n, cfg_n = truncated(params, cfg, n)
        np.testing.assert_allclose(lens[n], ref.forward(first_n, idx, cfg_n), rtol=1e-12, atol=1e-12)
    emb = params["wte"]["weight"][idx] + (params["wpe"]["weight"][: idx.shape[1]] if cfg.pos == "learned" else 0)
    np.testing.assert_allclose(lens[0], by_hand_readout(params, cfg, emb), rtol=1e-10, atol=1e-12)


@settings(max_examples=8)
@given(config_and_tokens(llama=True), seeds())
def test_the_jax_lens_agrees_with_the_reference_and_ends_on_its_own_logits(x64, cfg_idx, seed):
    cfg, idx = cfg_idx
    params = noisy_params(cfg, seed)
    lens = logit_lens(params, idx, cfg, backend="jax")
    np.testing.assert_allclose(lens, logit_lens(params, idx, cfg), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(lens[-1], capture(params, idx, cfg, backend="jax")["logits"])
