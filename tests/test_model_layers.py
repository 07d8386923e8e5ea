"""minigpt.model.layers: the one attention formula and the cached attention path, against the NumPy reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.model import CausalSelfAttention, attention, causal_mask
from minigpt.reference.functional import causal_mask as ref_causal_mask

# jitted: one program per shape, not each op of the formula compiled alone
attention_jit = jax.jit(attention)
attention_and_weights = jax.jit(functools.partial(attention, return_weights=True))


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),  # batch
    st.integers(1, 9),  # T_q
    st.integers(1, 9),  # T_k
    st.integers(1, 8),  # d_k
    st.integers(1, 5),  # d_v
    st.booleans(),  # with a random mask
    st.integers(0, 2**31 - 1),
)
def test_attention_is_the_reference_formula_float64(x64, B, Tq, Tk, d, dv, masked, seed):
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((B, Tq, d)), rng.standard_normal((B, Tk, d)), rng.standard_normal((B, Tk, dv))
    mask = None
    if masked:  # −∞ at random pairs, but every query keeps at least its first key
        hidden = rng.random((Tq, Tk)) < 0.4
        hidden[:, 0] = False
        mask = np.where(hidden, -np.inf, 0.0)
    want, want_w = ref.scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    got, got_w = attention_and_weights(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mask)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(got_w), want_w, rtol=1e-12, atol=1e-13)
    assert np.asarray(attention_jit(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mask)).shape == (B, Tq, dv)


@given(st.integers(1, 20))
def test_causal_mask_is_the_reference_mask(T):
    np.testing.assert_array_equal(np.asarray(causal_mask(T)), ref_causal_mask(T))


def _attention_layer(cfg: GPTConfig, seed: int, dtype=jnp.float64) -> CausalSelfAttention:
    layer = CausalSelfAttention(cfg, rngs=nnx.Rngs(seed), dtype=dtype)
    layer.eval()
    return layer


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(2, 10), st.integers(0, 2**31 - 1))
def test_cached_attention_prefill_then_steps_equals_one_causal_pass(x64, n_head, head_size, T, seed):
    """Writing keys/values into the cache slot by slot and attending all slots under the cache mask gives the
    outputs of one causal pass over the whole sequence, and the cache ends up holding every key and value."""
    from minigpt.model import KVCache

    cfg = GPTConfig(vocab_size=5, block_size=T, n_layer=1, n_head=n_head, n_embd=n_head * head_size)
    layer = _attention_layer(cfg, seed)
    x = jnp.asarray(np.random.default_rng(seed).standard_normal((2, T, cfg.n_embd)))
    want = np.asarray(layer(x))
    cache = KVCache.init(cfg, 2, T, jnp.float64)
    P = max(1, T // 2)
    pieces = []
    # jitted, the cache's mask included: two programs (the prefill and a one-token step) instead of every op
    # compiled eagerly per shape
    call = nnx.jit(lambda layer, x, c: layer(x, mask=c.mask(x.shape[1], x.dtype), cache=c.layers[0], pos=c.pos))
    for lo, hi in [(0, P)] + [(t, t + 1) for t in range(P, T)]:
        y, kv = call(layer, x[:, lo:hi], cache)
        cache = cache.advance([kv], hi - lo)
        pieces.append(np.asarray(y))
    assert int(cache.pos) == T
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), want, rtol=1e-10, atol=1e-12)
    # the cached keys are x's keys: c_attn's middle third, split into heads
    k_all = np.asarray(layer.c_attn(x))[..., cfg.n_embd : 2 * cfg.n_embd]
    k_heads = k_all.reshape(2, T, n_head, head_size).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(np.asarray(kv[0]), k_heads, rtol=1e-12, atol=1e-13)


def test_cached_path_refuses_to_return_weights():
    cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4)
    layer = _attention_layer(cfg, 0, jnp.float32)
    cache = (jnp.zeros((1, 1, 4, 4), jnp.float32),) * 2
    with pytest.raises(ValueError, match="without cache="):
        layer(jnp.zeros((1, 1, 4)), cache=cache, pos=0, return_weights=True)


def test_attention_dropout_drops_weights_only_in_training():
    """The dropout hook sits between the softmax and V: with rate 0.5 in training some weights are zeroed
    (the rest scaled by 2); in eval mode the same call is the plain formula."""
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((1, 6, 4)), jnp.float32) for _ in range(3))
    drop = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=1))
    out, w = attention(q, k, v, None, dropout=drop, return_weights=True)
    assert not np.allclose(np.asarray(out), np.asarray(w @ v))
    drop.eval()
    np.testing.assert_allclose(np.asarray(attention(q, k, v, None, dropout=drop)), np.asarray(w @ v), rtol=1e-6)
