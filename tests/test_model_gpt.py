"""minigpt.model.gpt: the pure ``apply``, the one token NLL, inference by default, remat and the cache options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig, flatten_params
from minigpt import reference as ref
from minigpt.model import KVCache, apply, cross_entropy, from_params, to_params, token_nll
from minigpt.testing.strategies import config_and_tokens, seeds

JAX_EXAMPLES = settings(max_examples=5, deadline=None)  # each example compiles: a few, drawn widely


def _params(cfg, seed, dtype):
    p = ref.init_params(cfg, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for name, a in flatten_params(p).items():  # non-trivial gains and biases, so every tensor matters
        if name.endswith(".bias") or ".ln_" in name or name.startswith("ln_f"):
            a += (0.1 * rng.standard_normal(a.shape)).astype(dtype)
    return p


@JAX_EXAMPLES
@given(config_and_tokens(), seeds(), st.booleans(), st.booleans())
def test_apply_is_the_reference_forward_float64(x64, cfg_idx, seed, fast, remat):
    cfg, idx = cfg_idx
    params = _params(cfg, seed, np.float64)
    fn = jax.jit(lambda p, x: apply(p, x, cfg, fast=fast, remat=remat))
    np.testing.assert_allclose(np.asarray(fn(params, idx)), ref.forward(params, idx, cfg), rtol=1e-9, atol=1e-12)
    hidden = jax.jit(lambda p, x: apply(p, x, cfg, fast=fast, remat=remat, output="hidden"))(params, idx)
    np.testing.assert_allclose(np.asarray(hidden), ref.hidden_states(params, idx, cfg), rtol=1e-9, atol=1e-12)


@JAX_EXAMPLES
@given(config_and_tokens(), seeds())
def test_apply_with_a_cache_prefill_and_steps_equal_the_full_forward(x64, cfg_idx, seed):
    """KV cache ≡ full forward, through the GPT itself: prefill half the tokens, then one at a time."""
    cfg, idx = cfg_idx
    params = _params(cfg, seed, np.float64)
    B, T = idx.shape
    want = ref.forward(params, idx, cfg)
    step = jax.jit(lambda p, x, c: apply(p, x, cfg, cache=c))
    cache = KVCache.init(cfg, B, T, jnp.float64)
    P = max(1, T // 2)
    logits, cache = step(params, idx[:, :P], cache)
    pieces = [np.asarray(logits)]
    for t in range(P, T):
        logits, cache = step(params, idx[:, t : t + 1], cache)
        pieces.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), want, rtol=1e-9, atol=1e-12)


def test_remat_gives_the_same_gradients_float64(x64):
    cfg = GPTConfig.preset("tiny", n_layer=2)
    params = _params(cfg, 0, np.float64)
    idx = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(2, cfg.block_size))
    y = np.roll(idx, -1, axis=1)

    def loss(p, remat):
        return cross_entropy(apply(p, idx, cfg, remat=remat), y)

    grad = jax.jit(jax.grad(loss), static_argnums=1)  # one program each; op by op it compiles every op's shape
    plain, recomputed = grad(params, False), grad(params, True)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(recomputed), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-13)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(2, 9), st.integers(-1, 8), st.integers(0, 2**31 - 1))
def test_token_nll_is_minus_log_softmax_at_the_target_float64(x64, B, T, V, ignore, seed):
    rng = np.random.default_rng(seed)
    logits = 3 * rng.standard_normal((B, T, V))
    targets = rng.integers(0, V, size=(B, T))
    targets[rng.random((B, T)) < 0.3] = ignore  # ignore may be −1 or a real id (then that id is never scored)
    keep = targets != ignore
    # brute force: log Σ exp over the vocabulary, one position at a time
    want = np.zeros((B, T))
    for b in range(B):
        for t in range(T):
            if keep[b, t]:
                z = logits[b, t]
                want[b, t] = np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[targets[b, t]]
    # jitted: one program per shape, not each op compiled alone
    got = np.asarray(jax.jit(token_nll)(jnp.asarray(logits), jnp.asarray(targets), ignore))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    mean = float(jax.jit(cross_entropy)(jnp.asarray(logits), jnp.asarray(targets), ignore))
    assert mean == pytest.approx(want.sum() / keep.sum() if keep.any() else 0.0, rel=1e-12, abs=1e-12)


def test_token_nll_of_bfloat16_logits_is_computed_in_float32():
    logits = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 7)), jnp.bfloat16)
    targets = jnp.asarray([[1, 2, 3], [4, 5, 6]])
    got = token_nll(logits, targets)
    assert got.dtype == jnp.float32
    want = token_nll(logits.astype(jnp.float32), targets)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_model_built_from_params_is_in_inference_mode():
    """The checkpoint's dropout is kept in the config but off until training is asked for, as in transformers."""
    cfg = GPTConfig.preset("tiny", dropout=0.5)
    params = ref.init_params(cfg)
    idx = np.arange(10)[None] % cfg.vocab_size
    want = ref.forward(params, idx, cfg)
    call = nnx.jit(lambda model, idx: model(idx))  # one program per mode, not each op compiled alone
    for model in (GPT.from_params(params, cfg), from_params(params, cfg), GPT(cfg, rngs=nnx.Rngs(0))):
        first, second = np.asarray(call(model, idx)), np.asarray(call(model, idx))
        np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.asarray(call(from_params(params, cfg), idx)), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(apply(params, idx, cfg)), want, rtol=1e-5, atol=1e-5)
    trained = from_params(params, cfg, train=True)
    assert not np.allclose(np.asarray(call(trained, idx)), want, atol=1e-3)  # training asked for: dropout is live


def test_apply_in_training_needs_a_key_when_dropout_is_on():
    cfg = GPTConfig.preset("tiny", dropout=0.1)
    params = ref.init_params(cfg)
    idx = np.zeros((1, 4), np.int32)
    with pytest.raises(ValueError, match="key="):
        apply(params, idx, cfg, train=True)
    a = apply(params, idx, cfg, train=True, key=jax.random.key(1))
    b = apply(params, idx, cfg, train=True, key=jax.random.key(2))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="output must be"):
        apply(params, idx, cfg, output="probs")


def test_from_params_takes_the_order_hub_load_pretrained_returns():
    cfg = GPTConfig.preset("tiny")
    params = ref.init_params(cfg)
    idx = np.arange(5)[None]
    swapped, plain = GPT.from_params(cfg, params), from_params(params, cfg)
    np.testing.assert_array_equal(np.asarray(swapped(idx)), np.asarray(plain(idx)))


def test_to_params_without_copy_hands_out_jax_arrays():
    cfg = GPTConfig.preset("tiny")
    model = from_params(ref.init_params(cfg), cfg)
    own = to_params(model, copy=False)
    assert isinstance(own["wte"]["weight"], jax.Array) and not isinstance(own["wte"]["weight"], np.ndarray)
    copied = to_params(model)
    assert isinstance(copied["wte"]["weight"], np.ndarray)
    np.testing.assert_array_equal(copied["wte"]["weight"], np.asarray(own["wte"]["weight"]))


def test_kv_cache_reorder_keeps_the_chosen_rows():
    cfg = GPTConfig.preset("tiny")
    cache = KVCache.init(cfg, 3, 5, start=[0, 1, 2])
    filled = cache.advance([(k + i, v - i) for i, (k, v) in enumerate(cache.layers)], 2)
    marked = filled.advance([(k.at[:, 0, 0, 0].set(jnp.arange(3.0)), v) for k, v in filled.layers], 0)
    picked = marked.reorder(np.array([2, 2, 0]))
    np.testing.assert_array_equal(np.asarray(picked.start), [2, 2, 0])
    np.testing.assert_array_equal(np.asarray(picked.layers[0][0][:, 0, 0, 0]), [2.0, 2.0, 0.0])
    assert int(picked.pos) == 2


def test_models_built_from_params_of_one_config_keep_their_own_values():
    """from_params caches the abstract model per config: the models it builds must not share their variables."""
    cfg = GPTConfig.preset("tiny")
    first, second = (from_params(ref.init_params(cfg, seed=s), cfg) for s in (1, 2))
    want = flatten_params(ref.init_params(cfg, seed=1))
    second.h[0].attn.c_attn.weight[...] = 0.0
    assert not to_params(second)["h"][0]["attn"]["c_attn"]["weight"].any()  # the write took ...
    for name, value in flatten_params(to_params(first)).items():  # ... in the second model only
        np.testing.assert_array_equal(value, want[name], err_msg=name)
