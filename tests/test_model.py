"""The Flax NNX model against the NumPy reference: logits, loss, components, causality, conversion.

Every JAX call goes through one ``nnx.jit``-compiled function per kind of call, so a new
hypothesis example costs one compilation, not one per primitive.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings

from minigpt import GPT, GPTConfig, flatten_params, from_params, to_params
from minigpt import reference as ref
from minigpt.testing.strategies import config_and_tokens, configs, seeds

logits_fn = nnx.jit(lambda m, x: m(x))
loss_fn = nnx.jit(lambda m, x, y: m.loss(x, y))
JAX_EXAMPLES = settings(max_examples=10)


@nnx.jit
def components(block, x):
    """A block's attention (with weights), the block, its MLP and its first LayerNorm on the same x: one program."""
    return block.attn(x, return_weights=True), block(x), block.mlp(x), block.ln_1(x)


@nnx.jit
def logits_loss_maps(model, idx, targets):
    """All three in one program: one compile per drawn shape instead of three."""
    return model(idx), model.loss(idx, targets), model.attention_weights(idx)


def _perturbed_params(cfg, seed, dtype):
    """Random params with non-trivial LayerNorm gains and biases, so every tensor matters."""
    p = ref.init_params(cfg, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for name, a in flatten_params(p).items():
        if name.endswith(".bias") or ".ln_" in name or name.startswith("ln_f"):
            a += (0.1 * rng.standard_normal(a.shape)).astype(dtype)
    return p


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))


@pytest.mark.slow
@JAX_EXAMPLES
@given(config_and_tokens(), seeds())
def test_logits_loss_and_attention_agree_float64(x64, cfg_idx, seed):
    cfg, idx = cfg_idx
    params = _perturbed_params(cfg, seed, np.float64)
    model = from_params(params, cfg)
    targets = np.roll(idx, -1, axis=1)
    logits, loss, maps = logits_loss_maps(model, idx, targets)
    np.testing.assert_allclose(np.asarray(logits), ref.forward(params, idx, cfg), rtol=1e-9, atol=1e-12)
    assert float(loss) == pytest.approx(float(ref.loss(params, idx, targets, cfg)), rel=1e-9)
    np.testing.assert_allclose(np.asarray(maps), ref.attention_weights(params, idx, cfg), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@JAX_EXAMPLES
@given(config_and_tokens(), seeds())
def test_logits_and_loss_agree_float32_and_are_causal(cfg_idx, seed):
    cfg, idx = cfg_idx
    params = _perturbed_params(cfg, seed, np.float32)
    model = from_params(params, cfg)
    targets = np.roll(idx, -1, axis=1)
    got, got_loss, _ = logits_loss_maps(model, idx, targets)
    got, want = np.asarray(got), ref.forward(params, idx, cfg)
    assert got.dtype == np.float32 and want.dtype == np.float32
    assert _rel_err(got, want) < 1e-4
    assert float(got_loss) == pytest.approx(float(ref.loss(params, idx, targets, cfg)), rel=1e-4)
    # causality: changing tokens after position t never changes logits at ≤ t
    t = int(np.random.default_rng(seed).integers(0, idx.shape[1]))
    changed = idx.copy()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % cfg.vocab_size
    changed_logits = np.asarray(logits_loss_maps(model, changed, targets)[0])  # the same program, cached
    np.testing.assert_array_equal(changed_logits[:, : t + 1], got[:, : t + 1])


@JAX_EXAMPLES
@given(configs(max_layers=1), seeds())
def test_components_agree_float64(x64, cfg, seed):
    params = _perturbed_params(cfg, seed, np.float64)
    model = from_params(params, cfg)
    p0, b0 = params["h"][0], model.h[0]
    x = np.random.default_rng(seed).standard_normal((2, cfg.block_size, cfg.n_embd))
    (y, w), block, mlp, ln_1 = components(b0, jnp.asarray(x))
    y_ref, w_ref = ref.multi_head_attention(x, p0["attn"], cfg.n_head, return_weights=True)
    close = dict(rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(y), y_ref, **close)
    np.testing.assert_allclose(np.asarray(w), w_ref, **close)
    np.testing.assert_allclose(np.asarray(block), ref.block(x, p0, cfg), **close)
    np.testing.assert_allclose(np.asarray(mlp), ref.mlp(x, p0["mlp"]), **close)
    ln = p0["ln_1"]
    want_ln = ref.layer_norm(x, ln["weight"], ln.get("bias"), cfg.layer_norm_eps)
    np.testing.assert_allclose(np.asarray(ln_1), want_ln, **close)


@given(configs(), seeds())
def test_param_round_trip_is_exact(cfg, seed):
    params = _perturbed_params(cfg, seed, np.float32)
    back = flatten_params(to_params(from_params(params, cfg)))
    flat = flatten_params(params)
    assert list(back) == list(flat)
    for name in flat:
        assert back[name].dtype == flat[name].dtype
        np.testing.assert_array_equal(back[name], flat[name], err_msg=name)
    # and the other way: the NNX state survives NNX → reference → NNX unchanged
    model = from_params(params, cfg, seed=seed)
    again = from_params(to_params(model), cfg)
    a, b = nnx.state(model, nnx.Param), nnx.state(again, nnx.Param)
    for (pa, va), (pb, vb) in zip(nnx.to_flat_state(a), nnx.to_flat_state(b), strict=True):
        assert pa == pb
        np.testing.assert_array_equal(np.asarray(va.get_value()), np.asarray(vb.get_value()))


def test_a_freshly_initialised_model_round_trips():
    cfg = GPTConfig.preset("tiny")
    model = GPT(cfg, rngs=nnx.Rngs(5))
    params = to_params(model)
    assert params["h"][0]["attn"]["c_proj"]["weight"].std() == pytest.approx(0.02 / math.sqrt(4), rel=0.15)
    again = to_params(from_params(params, cfg))
    for name, value in flatten_params(params).items():
        np.testing.assert_array_equal(flatten_params(again)[name], value)


@settings(max_examples=8)
@given(configs())
def test_uniform_logits_give_ln_vocab_jax(cfg):
    params = ref.init_params(cfg)
    params["wte"]["weight"][:] = 0.0
    idx = np.zeros((1, cfg.block_size), np.int32)
    assert float(loss_fn(from_params(params, cfg), idx, idx)) == pytest.approx(math.log(cfg.vocab_size), rel=1e-6)


def test_jit_gives_the_same_logits_as_eager():
    cfg = GPTConfig.preset("tiny")
    model = from_params(ref.init_params(cfg, seed=2), cfg)
    idx = np.arange(12)[None] % cfg.vocab_size
    np.testing.assert_allclose(np.asarray(logits_fn(model, idx)), np.asarray(model(idx)), rtol=1e-6, atol=1e-6)


def test_out_of_range_ids_inside_jit_give_nan_not_a_clamped_row():
    cfg = GPTConfig.preset("tiny")
    model = from_params(ref.init_params(cfg), cfg)
    bad = jnp.array([[1, cfg.vocab_size + 5], [1, 2]])
    logits = np.asarray(logits_fn(model, bad))  # values are unknown while tracing: no ValueError possible
    # JAX would clamp id V+5 to row V-1 and answer silently; the NaN row reaches the loss instead
    # (0·NaN = NaN, so it spreads through the whole sequence even where attention weights are 0).
    assert np.all(np.isnan(logits[0]))
    assert np.all(np.isfinite(logits[1]))


def test_dropout_is_honoured_in_training_mode_only():
    cfg = GPTConfig.preset("tiny", dropout=0.5)
    params = ref.init_params(cfg)
    model = from_params(params, cfg, seed=3, train=True)
    idx = np.arange(12)[None] % cfg.vocab_size
    a, b = np.asarray(logits_fn(model, idx)), np.asarray(logits_fn(model, idx))  # training asked for explicitly
    assert not np.allclose(a, b), "two training-mode passes must draw different dropout masks"
    model.eval()
    np.testing.assert_allclose(np.asarray(logits_fn(model, idx)), ref.forward(params, idx, cfg), rtol=1e-5, atol=1e-5)
    model.train()
    assert not np.allclose(np.asarray(logits_fn(model, idx)), ref.forward(params, idx, cfg), atol=1e-5)
    # the same seed gives the same masks: dropout randomness comes only from the explicit seed
    again = from_params(params, cfg, seed=3, train=True)
    np.testing.assert_array_equal(np.asarray(logits_fn(again, idx)), a)


def test_float64_params_need_x64():
    cfg = GPTConfig.preset("tiny")
    with pytest.raises(ValueError, match="jax_enable_x64"):
        from_params(ref.init_params(cfg, dtype=np.float64), cfg)
