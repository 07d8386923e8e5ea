"""minigpt.model.kernels (the fast training path) against the plain code: values and gradients.

Each kernel has a hand-written backward pass, so gradients are checked against JAX's autodiff of the
plain formula (an independent derivation) and, for attention, values against the NumPy reference.
float64 throughout, so agreement is to ~1e-12 and any formula slip shows.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig, from_params
from minigpt import reference as ref
from minigpt.model import kernels
from minigpt.reference.functional_backward import layer_norm_backward, layer_norm_forward
from minigpt.testing.strategies import config_and_tokens, seeds

EXAMPLES = settings(max_examples=15)


def plain_attention(q, k, v):
    T, d = q.shape[-2], q.shape[-1]
    s = q @ k.swapaxes(-1, -2) / math.sqrt(d)
    w = jax.nn.softmax(jnp.where(jnp.tril(jnp.ones((T, T), bool)), s, -jnp.inf), axis=-1)
    return w @ v


def plain_layer_norm(x, w, b, eps):
    mu = jnp.mean(x, -1, keepdims=True)
    y = (x - mu) / jnp.sqrt(jnp.mean((x - mu) ** 2, -1, keepdims=True) + eps) * w
    return y if b is None else y + b


def value_and_vjp(f, args, cotangent):
    out, vjp = jax.vjp(f, *args)
    return out, vjp(cotangent)


@pytest.mark.slow
@EXAMPLES
@given(
    B=st.integers(1, 2),
    H=st.integers(1, 3),
    T=st.integers(1, 70),
    d=st.integers(1, 8),
    block=st.integers(1, 80),
    scale=st.sampled_from([0.1, 1.0, 4.0]),
    keep_weights=st.sampled_from([None, True, False]),
    seed=seeds(),
)
def test_causal_attention_matches_plain_values_and_gradients(x64, B, H, T, d, block, scale, keep_weights, seed):
    rng = np.random.default_rng(seed)
    q, k, v, do = (rng.standard_normal((B, H, T, d)) for _ in range(4))
    q, k = q * scale, k * scale
    fast = jax.jit(
        lambda q, k, v, do: value_and_vjp(lambda *a: kernels.causal_attention(*a, block, keep_weights), (q, k, v), do)
    )
    out, grads = fast(q, k, v, do)
    want_out, want_grads = jax.jit(lambda q, k, v, do: value_and_vjp(plain_attention, (q, k, v), do))(q, k, v, do)
    # the value also against the NumPy reference, head by head
    mask = ref.causal_mask(T)
    for b in range(B):
        for h in range(H):
            np.testing.assert_allclose(
                out[b, h], ref.scaled_dot_product_attention(q[b, h], k[b, h], v[b, h], mask), rtol=1e-10, atol=1e-12
            )
    np.testing.assert_allclose(out, want_out, rtol=1e-10, atol=1e-12)
    for name, g, w in zip("qkv", grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11, err_msg=f"d{name}")


def test_causal_attention_is_causal_and_float32_close():
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 3, 130, 16)), jnp.float32) for _ in range(3))
    out = kernels.causal_attention(q, k, v)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, plain_attention(q, k, v), rtol=1e-5, atol=1e-5)
    # changing the last key/value changes only the last query's output
    k2, v2 = k.at[:, :, -1].add(1.0), v.at[:, :, -1].add(1.0)
    out2 = kernels.causal_attention(q, k2, v2)
    np.testing.assert_array_equal(out2[:, :, :-1], out[:, :, :-1])
    assert not np.allclose(out2[:, :, -1], out[:, :, -1])


def test_attention_keeps_the_weights_only_for_short_sequences(monkeypatch):
    q = jnp.ones((1, 1, 8, 2))
    saved = kernels._attention_fwd(q, q, q, 4, None)[1][-1]  # what the backward pass gets
    assert [a.shape for a in saved] == [(1, 1, 4, 4), (1, 1, 4, 8)]  # the causal blocks of P
    monkeypatch.setattr(kernels, "KEEP_WEIGHTS_UP_TO", 7)
    saved = kernels._attention_fwd(q, q, q, 4, None)[1][-1]
    assert [a.shape for a in saved] == [(1, 1, 4, 1), (1, 1, 4, 1)]  # only the log-sum-exp: O(T) memory


@EXAMPLES
@given(
    shape=st.sampled_from([(5,), (3, 7), (2, 4, 16)]),
    with_bias=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-2]),
    offset=st.sampled_from([0.0, 100.0]),
    seed=seeds(),
)
def test_layer_norm_matches_plain_values_and_gradients(x64, shape, with_bias, eps, offset, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + offset  # an offset: the mean must really be removed
    w, b = rng.standard_normal(shape[-1:]), rng.standard_normal(shape[-1:]) if with_bias else None
    dy = rng.standard_normal(shape)
    args = (x, w) if b is None else (x, w, b)

    def fast(*a):
        return kernels.layer_norm(a[0], a[1], a[2] if len(a) > 2 else None, eps)

    def plain(*a):
        return plain_layer_norm(a[0], a[1], a[2] if len(a) > 2 else None, eps)

    out, grads = value_and_vjp(fast, args, dy)
    want_out, want_grads = value_and_vjp(plain, args, dy)
    np.testing.assert_allclose(out, want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, ref.layer_norm(x, w, b, eps), atol=1e-10)
    for i, (g, want) in enumerate(zip(grads, want_grads, strict=True)):
        np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-10, err_msg=f"argument {i}")
    # and against the NumPy reference's hand-written backward (a third derivation)
    _, cache = layer_norm_forward(x, w, b, eps)
    for i, (g, want) in enumerate(zip(grads, layer_norm_backward(dy, cache), strict=False)):
        np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-10, err_msg=f"argument {i} (NumPy backward)")


@EXAMPLES
@given(scale=st.sampled_from([0.5, 3.0, 20.0]), seed=seeds())
def test_gelu_matches_jax_values_and_gradients(x64, scale, seed):
    rng = np.random.default_rng(seed)
    x, dy = rng.standard_normal((4, 33)) * scale, rng.standard_normal((4, 33))
    out, (g,) = value_and_vjp(kernels.gelu, (x,), dy)
    want_out, (want_g,) = value_and_vjp(lambda x: jax.nn.gelu(x, approximate=True), (x,), dy)
    np.testing.assert_allclose(out, want_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, ref.gelu(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, want_g, rtol=1e-10, atol=1e-12)


def _loss_and_grads(model, idx, targets):
    def loss(m):
        return m.loss(idx, targets)

    value, grads = nnx.value_and_grad(loss)(model)
    return value, nnx.to_pure_dict(grads)


@nnx.jit
def _both(fast, plain, idx, targets):
    """Logits, loss and gradients of both models: one program per example instead of four."""
    return (fast(idx), *_loss_and_grads(fast, idx, targets)), (plain(idx), *_loss_and_grads(plain, idx, targets))


@pytest.mark.slow
@settings(max_examples=10)
@given(config_and_tokens(max_block=40), seeds())
def test_fast_gpt_equals_plain_gpt_logits_loss_and_gradients(x64, cfg_idx, seed):
    cfg, idx = cfg_idx
    params = ref.init_params(cfg, seed=seed, dtype=np.float64)
    targets = np.roll(idx, -1, axis=1)
    plain, fast = from_params(params, cfg), from_params(params, cfg, fast=True)
    (yf, lf, gf), (yp, lp, gp) = _both(fast, plain, idx, targets)
    np.testing.assert_allclose(yf, yp, rtol=1e-10, atol=1e-12)
    assert float(lf) == pytest.approx(float(lp), rel=1e-12)
    flat_f, flat_p = jax.tree.leaves(gf), jax.tree.leaves(gp)
    assert len(flat_f) == len(flat_p) > 0
    for a, b in zip(flat_f, flat_p, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11)


def test_fast_gpt_with_dropout_uses_the_same_masks_as_plain():
    """Attention dropout needs the weights, so the fast model takes the plain attention there."""
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.3)
    params = ref.init_params(cfg, seed=1, dtype=np.float32)
    idx = np.random.default_rng(0).integers(0, 20, size=(2, 8))
    plain, fast = from_params(params, cfg, seed=3, train=True), from_params(params, cfg, seed=3, fast=True, train=True)
    call = nnx.jit(lambda model, idx: model(idx))  # one program per model, not each op compiled alone
    a, b = np.asarray(call(plain, idx)), np.asarray(call(fast, idx))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    plain.eval()
    assert not np.allclose(np.asarray(call(plain, idx)), a, atol=1e-3)  # dropout really was active


def test_fast_gpt_attention_maps_are_the_plain_ones():
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8)
    params = ref.init_params(cfg, seed=2, dtype=np.float32)
    idx = np.random.default_rng(1).integers(0, 20, size=(1, 8))
    maps = GPT.from_params(params, cfg, fast=True).attention_weights(idx)
    np.testing.assert_allclose(maps, ref.attention_weights(params, idx, cfg), rtol=1e-5, atol=1e-6)


def test_fast_gpt_really_calls_the_kernels(monkeypatch):
    """Guards the wiring: a fast model that silently fell back to the plain code would pass the tests above."""
    calls = []
    for name in ("causal_attention", "layer_norm", "gelu"):
        original = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    cfg = GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8)
    params = ref.init_params(cfg, seed=2, dtype=np.float32)
    idx = np.random.default_rng(1).integers(0, 20, size=(1, 8))
    from_params(params, cfg, fast=True)(idx)
    assert sorted(set(calls)) == ["causal_attention", "gelu", "layer_norm"]
    assert calls.count("causal_attention") == cfg.n_layer and calls.count("layer_norm") == 2 * cfg.n_layer + 1
    calls.clear()
    from_params(params, cfg)(idx)
    assert calls == []
