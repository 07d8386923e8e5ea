"""minigpt.interpret.patching: patch everything downstream and the clean run comes back; patch nothing and the
corrupted run stays; a position the last position never reads restores nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt.interpret import capture
from minigpt.interpret.patching import Patcher, patch_activation, patching_sweep
from minigpt.testing.strategies import configs, seeds
from tests.test_interpret_capture import noisy_params


@st.composite
def patching_cases(draw, **config_kwargs):
    """A config, noisy params, a clean batch and a corrupted copy with 1..T tokens changed, a target and contrast."""
    cfg = draw(configs(llama=True, **config_kwargs).filter(lambda c: c.vocab_size > 2))
    seed = draw(seeds())
    rng = np.random.default_rng(seed)
    B, T = draw(st.integers(1, 2)), draw(st.integers(1, cfg.block_size))
    clean = rng.integers(0, cfg.vocab_size, (B, T))
    corrupted = clean.copy()
    where = rng.random(T) < 0.5
    where[rng.integers(T)] = True
    corrupted[:, where] = (
        corrupted[:, where] + 1 + rng.integers(0, cfg.vocab_size - 1, (B, where.sum()))
    ) % cfg.vocab_size
    target, contrast = rng.choice(cfg.vocab_size, 2, replace=False)
    return cfg, noisy_params(cfg, seed), clean, corrupted, int(target), draw(st.sampled_from([None, int(contrast)]))


def patcher(case, backend="numpy"):
    cfg, params, clean, corrupted, target, contrast = case
    try:
        return Patcher(params, clean, corrupted, cfg, target, contrast, backend=backend)
    except ValueError as e:  # the corruption did not move the metric: no fraction to restore
        assume("same logit difference" not in str(e))
        raise


@settings(max_examples=20)
@given(patching_cases(), st.data())
def test_patching_everything_restores_the_clean_run_and_nothing_leaves_the_corrupted_one(case, data):
    cfg = case[0]
    p = patcher(case)
    T = case[2].shape[1]
    layer = data.draw(st.integers(0, cfg.n_layer - 1))
    for name in (f"h.{cfg.n_layer - 1}.resid_post", "ln_f.out", f"h.{layer}.resid_pre"):
        full = p.patch(name)
        np.testing.assert_array_equal(full.patched, full.clean)
        np.testing.assert_array_equal(full.restored, 1.0)
        none = p.patch(name, [])
        np.testing.assert_array_equal(none.patched, none.corrupted)
        np.testing.assert_array_equal(none.restored, 0.0)
    # the last position's logits read the final residual stream at the last position only
    if T > 1:
        early = p.patch(f"h.{cfg.n_layer - 1}.resid_post", list(range(T - 1)))
        np.testing.assert_array_equal(early.restored, 0.0)
    # the corrupted baseline is the corrupted prompt's own capture
    acts = capture(case[1], case[3], cfg)
    np.testing.assert_array_equal(p.corrupted_acts["logits"], acts["logits"])


@settings(max_examples=10)
@given(patching_cases(max_layers=2, max_block=6))
def test_the_sweep_is_zero_where_the_prompts_agree_in_the_first_block(case):
    cfg, params, clean, corrupted, target, contrast = case
    p = patcher(case)
    sweep = p.sweep()
    assert sweep.shape == (cfg.n_layer, *clean.shape)
    same = np.all(clean == corrupted, axis=0)  # positions where every batch row has the same token
    np.testing.assert_array_equal(sweep[0][:, same], 0.0)  # the embeddings there are equal: the patch is a no-op
    np.testing.assert_array_equal(
        sweep, patching_sweep(params, clean, corrupted, cfg, target=target, contrast=contrast)
    )


def test_the_jax_twin_patches_inside_the_model(x64):
    cfg = GPTConfig.preset("llama-tiny")
    params = noisy_params(cfg, 2)
    rng = np.random.default_rng(2)
    clean = rng.integers(0, cfg.vocab_size, (2, 7))
    corrupted = clean.copy()
    corrupted[:, 2] = (corrupted[:, 2] + 1) % cfg.vocab_size
    numpy, jax = (Patcher(params, clean, corrupted, cfg, 3, 9, backend=b) for b in ("numpy", "jax"))
    np.testing.assert_allclose(jax.patch("h.1.resid_post").restored, 1.0, rtol=1e-9)
    np.testing.assert_array_equal(jax.patch("h.1.resid_post", []).restored, 0.0)
    for name, pos in (("h.0.attn.z", [2, 3]), ("h.1.attn.k", [2]), ("h.0.mlp.act", None), ("h.1.attn.q", [6])):
        np.testing.assert_allclose(
            jax.patch(name, pos).restored, numpy.patch(name, pos).restored, rtol=1e-8, atol=1e-10
        )


def test_bad_patches_are_named():
    cfg = GPTConfig.preset("tiny")
    params = noisy_params(cfg, 0)
    a, b = np.array([[1, 2, 3]]), np.array([[1, 2, 4]])
    with pytest.raises(ValueError, match="same number of tokens"):
        patch_activation(params, a, b[:, :2], cfg, "h.0.resid_pre", target=1)
    with pytest.raises(ValueError, match="same logit difference"):
        patch_activation(params, a, a, cfg, "h.0.resid_pre", target=1, contrast=2)
    p = Patcher(params, a, b, cfg, 1, 2)
    with pytest.raises(ValueError, match="recorded, not patched.*attn.z"):
        p.patch("h.1.attn.weights")
    with pytest.raises(ValueError, match="unknown activation 'h.7.resid_pre'"):
        p.patch("h.7.resid_pre")
    with pytest.raises(ValueError, match=r"positions \[3\] are outside the prompt's 3 positions"):
        p.patch("h.0.resid_pre", [3])
    with pytest.raises(ValueError, match="unknown activation kind 'mlp'"):
        p.sweep("mlp")
