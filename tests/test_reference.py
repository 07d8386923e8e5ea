"""The NumPy reference against independent computations and its defining properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.testing.strategies import attention_inputs, config_and_tokens, configs, seeds

finite = st.floats(-30, 30, allow_nan=False, width=64)


@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 9)), elements=finite))
def test_softmax_rows_are_distributions_and_shift_invariant(x):
    p = ref.softmax(x)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ref.softmax(x + 7.5), p, rtol=1e-10, atol=1e-15)
    with jax.enable_x64(True):
        np.testing.assert_allclose(p, np.asarray(jax.nn.softmax(x, axis=-1)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.exp(ref.log_softmax(x)), p, rtol=1e-10, atol=1e-15)


def test_softmax_does_not_overflow():
    p = ref.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 16)), elements=finite), seeds())
def test_layer_norm_normalises_then_scales(x, seed):
    x = x + np.random.default_rng(seed).standard_normal(x.shape)  # avoid constant rows
    C = x.shape[-1]
    y = ref.layer_norm(x, np.ones(C), np.zeros(C), eps=1e-12)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-9)
    np.testing.assert_allclose(y.var(-1), 1.0, rtol=1e-6)
    g, b = np.random.default_rng(seed).standard_normal((2, C))
    np.testing.assert_allclose(ref.layer_norm(x, g, b, eps=1e-12), y * g + b, rtol=1e-12, atol=1e-12)


def test_gelu_is_gpt2_tanh_form_close_to_erf_gelu():
    x = np.linspace(-6, 6, 1001)
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    assert np.max(np.abs(ref.gelu(x) - exact)) < 1e-3  # the tanh approximation, not erf itself
    assert np.max(np.abs(ref.gelu(x) - exact)) > 1e-6
    with jax.enable_x64(True):
        np.testing.assert_allclose(ref.gelu(x), np.asarray(jax.nn.gelu(x, approximate=True)), rtol=1e-12, atol=1e-14)


@jax.jit  # one program per shape, not each of its ops compiled alone
def _jax_causal_attention(q, k, v):  # (B, T, d) with one head
    out = jax.nn.dot_product_attention(
        q[:, :, None], k[:, :, None], v[:, :, None], is_causal=True, implementation="xla"
    )
    return out[:, :, 0, :]


@settings(max_examples=10)
@given(attention_inputs(equal_dims=True))
def test_attention_matches_jax_dot_product_attention(qkv):
    q, k, v = qkv
    T = q.shape[1]
    out, w = ref.scaled_dot_product_attention(q, k, v, ref.causal_mask(T, q.dtype), return_weights=True)
    with jax.enable_x64(True):
        expected = _jax_causal_attention(q, k, v)
    # JAX's kernel computes its softmax in float32 even for float64 inputs: float32 tolerance
    np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert np.all(np.triu(w, k=1) == 0.0), "attention weights must be zero above the diagonal"
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)


@given(attention_inputs())
def test_attention_without_mask_is_the_formula(qkv):
    q, k, v = qkv
    scores = np.einsum("btd,bsd->bts", q, k) / np.sqrt(q.shape[-1])
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True) @ v
    np.testing.assert_allclose(ref.scaled_dot_product_attention(q, k, v), expected, rtol=1e-9, atol=1e-12)


def _mha_by_the_book(x, attn, n_head):
    """Concat(head_1..head_h) Wᴼ with explicit per-head projection matrices and loops."""
    B, T, C = x.shape
    d = C // n_head
    W, b = attn["c_attn"]["weight"], attn["c_attn"].get("bias", np.zeros(3 * C))
    heads = []
    for h in range(n_head):
        cols = slice(h * d, (h + 1) * d)
        Wq, Wk, Wv = W[:, :C][:, cols], W[:, C : 2 * C][:, cols], W[:, 2 * C :][:, cols]
        bq, bk, bv = b[:C][cols], b[C : 2 * C][cols], b[2 * C :][cols]
        out = np.zeros((B, T, d))
        for i in range(B):
            Q, K, V = x[i] @ Wq + bq, x[i] @ Wk + bk, x[i] @ Wv + bv
            for t in range(T):  # query t attends to keys 0..t
                s = K[: t + 1] @ Q[t] / math.sqrt(d)
                a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                out[i, t] = a @ V[: t + 1]
        heads.append(out)
    Wo, bo = attn["c_proj"]["weight"], attn["c_proj"].get("bias", np.zeros(C))
    return np.concatenate(heads, axis=-1) @ Wo + bo


@given(configs(max_layers=1), seeds())
def test_multi_head_attention_is_concat_of_heads(cfg, seed):
    params = ref.init_params(cfg, seed=seed, dtype=np.float64)
    attn = params["h"][0]["attn"]
    rng = np.random.default_rng(seed)
    for leaf in ("weight", "bias"):  # non-zero biases and larger weights, so mistakes show
        for part in ("c_attn", "c_proj"):
            if leaf in attn[part]:
                attn[part][leaf] = rng.standard_normal(attn[part][leaf].shape) * 0.5
    x = rng.standard_normal((2, cfg.block_size, cfg.n_embd))
    y, w = ref.multi_head_attention(x, attn, cfg.n_head, return_weights=True)
    np.testing.assert_allclose(y, _mha_by_the_book(x, attn, cfg.n_head), rtol=1e-9, atol=1e-11)
    assert w.shape == (2, cfg.n_head, cfg.block_size, cfg.block_size)


@given(config_and_tokens(), seeds())
def test_loss_is_the_explicit_causal_log_likelihood(cfg_idx, seed):
    cfg, idx = cfg_idx
    params = ref.init_params(cfg, seed=seed, dtype=np.float64)
    targets = np.random.default_rng(seed).integers(0, cfg.vocab_size, idx.shape)
    logits = ref.forward(params, idx, cfg)
    total, n = 0.0, 0
    for b in range(idx.shape[0]):
        for t in range(idx.shape[1]):
            row = logits[b, t]
            log_z = math.log(sum(math.exp(v) for v in row))
            total += log_z - row[targets[b, t]]
            n += 1
    assert float(ref.loss(params, idx, targets, cfg)) == pytest.approx(total / n, rel=1e-10)


@given(config_and_tokens(), seeds())
def test_ignored_targets_do_not_change_the_loss(cfg_idx, seed):
    cfg, idx = cfg_idx
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, seed=seed, dtype=np.float64)
    targets = rng.integers(0, cfg.vocab_size, idx.shape)
    ignore = rng.random(idx.shape) < 0.4
    ignore.flat[0] = False  # keep at least one target
    masked = np.where(ignore, -1, targets)
    logp = ref.log_softmax(ref.forward(params, idx, cfg))
    kept = [-logp[b, t, targets[b, t]] for b, t in zip(*np.nonzero(~ignore), strict=True)]
    assert float(ref.loss(params, idx, masked, cfg)) == pytest.approx(np.mean(kept), rel=1e-10)
    other = np.where(ignore, -1, masked)  # changing what sits under the ignored positions changes nothing
    assert float(ref.loss(params, idx, other, cfg)) == float(ref.loss(params, idx, masked, cfg))


@given(config_and_tokens(), seeds())
def test_causality(cfg_idx, seed):
    cfg, idx = cfg_idx
    params = ref.init_params(cfg, seed=seed, dtype=np.float64)
    T = idx.shape[1]
    t = np.random.default_rng(seed).integers(0, T)
    changed = idx.copy()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % cfg.vocab_size
    a, b = ref.forward(params, idx, cfg), ref.forward(params, changed, cfg)
    np.testing.assert_array_equal(a[:, : t + 1], b[:, : t + 1])
    if t + 1 < T and cfg.n_embd > 1:  # with C = 1 LayerNorm outputs 0 and every logit is 0
        assert not np.allclose(a[:, t + 1 :], b[:, t + 1 :]), "the future did change: logits after t must react"


@given(configs())
def test_uniform_logits_give_ln_vocab(cfg):
    params = ref.init_params(cfg, dtype=np.float64)
    params["wte"]["weight"][:] = 0.0  # tied head → every logit is 0
    idx = np.zeros((2, cfg.block_size), dtype=np.int64)
    assert float(ref.loss(params, idx, idx, cfg)) == pytest.approx(math.log(cfg.vocab_size), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_function_stays_in_the_input_dtype(dtype):
    cfg = GPTConfig.preset("tiny")
    params = ref.init_params(cfg, dtype=dtype)
    idx = np.arange(cfg.block_size)[None] % cfg.vocab_size
    x = np.ones((2, 5, cfg.n_embd), dtype)
    C = cfg.n_embd
    assert ref.softmax(x).dtype == dtype
    assert ref.log_softmax(x).dtype == dtype
    assert ref.gelu(x).dtype == dtype
    assert ref.layer_norm(x, np.ones(C, dtype), np.zeros(C, dtype)).dtype == dtype
    assert ref.scaled_dot_product_attention(x, x, x, ref.causal_mask(5, dtype)).dtype == dtype
    assert ref.multi_head_attention(x, params["h"][0]["attn"], cfg.n_head).dtype == dtype
    assert ref.block(x, params["h"][0], cfg).dtype == dtype
    assert ref.forward(params, idx, cfg).dtype == dtype
    assert ref.loss(params, idx, idx, cfg).dtype == dtype
    assert ref.attention_weights(params, idx, cfg).dtype == dtype


def test_init_follows_gpt2():
    cfg = GPTConfig.preset("small", vocab_size=512)
    p = ref.init_params(cfg, seed=1)
    assert p["h"][0]["attn"]["c_attn"]["weight"].std() == pytest.approx(0.02, rel=0.02)
    assert p["h"][0]["mlp"]["c_proj"]["weight"].std() == pytest.approx(0.02 / math.sqrt(2 * cfg.n_layer), rel=0.02)
    assert p["h"][0]["attn"]["c_proj"]["weight"].std() == pytest.approx(0.02 / math.sqrt(2 * cfg.n_layer), rel=0.02)
    assert np.all(p["h"][0]["ln_1"]["weight"] == 1) and np.all(p["ln_f"]["bias"] == 0)
    assert np.all(p["h"][1]["mlp"]["c_fc"]["bias"] == 0)
    again = ref.init_params(cfg, seed=1)
    np.testing.assert_array_equal(again["wte"]["weight"], p["wte"]["weight"])


def test_attention_weights_shape_and_rows():
    cfg = GPTConfig.preset("tiny")
    p = ref.init_params(cfg, dtype=np.float64)
    idx = np.arange(10)[None]
    w = ref.attention_weights(p, idx, cfg)
    assert w.shape == (cfg.n_layer, 1, cfg.n_head, 10, 10)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert np.all(np.triu(w, 1) == 0)


def test_jnp_is_not_needed_by_the_reference():
    # the reference must run on plain NumPy inputs and return NumPy arrays
    cfg = GPTConfig.preset("tiny")
    out = ref.forward(ref.init_params(cfg), np.zeros((1, 3), np.int32), cfg)
    assert type(out) is np.ndarray and not isinstance(out, jnp.ndarray)
