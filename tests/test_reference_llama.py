"""The NumPy Llama pieces (minigpt.reference.llama) against independent computations, and their hand-written
backward passes (llama_backward, the attention/MLP/block/model backward with the options) against central
finite differences in float64, as in test_functional_backward."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.config import GPTConfig
from minigpt.params import flatten_params, map_params
from minigpt.reference import functional as F
from minigpt.reference import functional_backward as FB
from minigpt.reference import llama as LL
from minigpt.reference import llama_backward as LB
from minigpt.reference import model as M
from minigpt.reference import model_backward as MB
from tests.test_functional_backward import check, numeric_grad, rand, rel_err

seeds = st.integers(0, 2**32 - 1)


# -- the forward pieces against independent formulations --------------------------------------------


@settings(max_examples=20)
@given(seed=seeds, half=st.integers(1, 4), T=st.integers(1, 6), theta=st.sampled_from([10.0, 10000.0]))
def test_rope_is_complex_multiplication_of_half_split_pairs(seed, half, T, theta):
    """Pair (i, i + d/2) as the complex number x_i + j·x_{i+d/2}, multiplied by e^{j t θ^(−2i/d)}."""
    rng = np.random.default_rng(seed)
    x = rand(rng, 2, T, 2 * half)
    pos = rng.integers(0, 50, size=T)
    z = x[..., :half] + 1j * x[..., half:]
    freq = np.array([theta ** (-2 * i / (2 * half)) for i in range(half)])
    w = z * np.exp(1j * pos[:, None] * freq)
    np.testing.assert_allclose(LL.rope(x, pos, theta), np.concatenate([w.real, w.imag], -1), rtol=1e-12, atol=1e-12)


@settings(max_examples=20)
@given(seed=seeds, half=st.integers(1, 4), s=st.integers(0, 40), t=st.integers(0, 40), shift=st.integers(-20, 20))
def test_rope_keeps_norms_and_scores_depend_on_relative_position(seed, half, s, t, shift):
    rng = np.random.default_rng(seed)
    q, k = rand(rng, 2 * half), rand(rng, 2 * half)
    qs, kt = LL.rope(q[None], np.array([s])), LL.rope(k[None], np.array([t]))
    np.testing.assert_allclose(np.linalg.norm(qs), np.linalg.norm(q), rtol=1e-12)
    moved = LL.rope(q[None], np.array([s + shift])) @ LL.rope(k[None], np.array([t + shift])).T
    np.testing.assert_allclose(moved, qs @ kt.T, rtol=1e-9, atol=1e-12)
    if s == t:  # same position: the rotation cancels
        np.testing.assert_allclose(qs @ kt.T, q @ k, rtol=1e-9, atol=1e-12)


def test_rms_norm_and_silu_by_brute_force():
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, 3, 5), rand(rng, 5), rand(rng, 5)
    for r in range(3):
        rms = np.sqrt(sum(v * v for v in x[r]) / 5 + 1e-5)
        np.testing.assert_allclose(LL.rms_norm(x, w, b)[r], [x[r, c] / rms * w[c] + b[c] for c in range(5)])
    np.testing.assert_allclose(LL.silu(x), x * (1 / (1 + np.exp(-x))), rtol=1e-14)
    assert LL.rms_norm(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(("H", "H_kv"), [(4, 2), (6, 3), (4, 1), (3, 3)])
def test_repeat_kv_serves_query_head_h_with_kv_head_h_over_group(H, H_kv):
    x = np.random.default_rng(1).standard_normal((2, H_kv, 3, 4))
    y = LL.repeat_kv(x, H // H_kv)
    assert y.shape == (2, H, 3, 4)
    for h in range(H):
        np.testing.assert_array_equal(y[:, h], x[:, h // (H // H_kv)])


def test_grouped_attention_equals_full_attention_with_duplicated_kv_columns():
    """GQA ≡ ordinary multi-head attention whose c_attn has each K/V head's columns copied for its group."""
    rng = np.random.default_rng(2)
    H, H_kv, d, C = 4, 2, 4, 16
    attn = {"c_attn": {"weight": rand(rng, C, (H + 2 * H_kv) * d), "bias": rand(rng, (H + 2 * H_kv) * d)},
            "c_proj": {"weight": rand(rng, C, C)}}  # fmt: skip
    x = rand(rng, 2, 5, C)

    def dup(a):  # the columns [Q | K | V] → [Q | K repeated | V repeated]
        q, k, v = a[..., : H * d], a[..., H * d : (H + H_kv) * d], a[..., (H + H_kv) * d :]

        def rep(t):
            return np.concatenate([t[..., (h // 2) * d : (h // 2 + 1) * d] for h in range(H)], axis=-1)

        return np.concatenate([q, rep(k), rep(v)], axis=-1)

    full = {"c_attn": {k: dup(v) for k, v in attn["c_attn"].items()}, "c_proj": attn["c_proj"]}
    pos = np.arange(5)
    want = F.multi_head_attention(x, full, H, positions=pos)
    np.testing.assert_allclose(F.multi_head_attention(x, attn, H, n_kv_head=H_kv, positions=pos), want, rtol=1e-12)


# -- backward passes against finite differences -------------------------------------------------------


@settings(max_examples=8)
@given(seed=seeds, shape=st.sampled_from([(1, 4), (2, 3, 6), (2, 2, 5, 2)]), theta=st.sampled_from([10.0, 1e4]))
def test_rope_backward(seed, shape, theta):
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape)
    pos = rng.integers(0, 30, size=shape[-2])
    y, cache = LB.rope_forward(x, pos, theta)
    r = rand(rng, *y.shape)
    check(lambda x: LL.rope(x, pos, theta), {"x": x}, {"x": LB.rope_backward(r, cache)}, r)


@settings(max_examples=8)
@given(seed=seeds, shape=st.sampled_from([(5,), (2, 3, 4), (1, 1, 6)]), bias=st.booleans())
def test_rms_norm_backward(seed, shape, bias):
    rng = np.random.default_rng(seed)
    x, w = rand(rng, *shape, scale=2.0), rand(rng, shape[-1])
    b = rand(rng, shape[-1]) if bias else None
    y, cache = LB.rms_norm_forward(x, w, b, 1e-5)
    np.testing.assert_array_equal(y, LL.rms_norm(x, w, b, 1e-5))
    r = rand(rng, *shape)
    dx, dw, db = LB.rms_norm_backward(r, cache)
    assert (db is None) == (not bias)
    analytic = {"x": dx, "weight": dw} | ({"bias": db} if bias else {})
    check(lambda x, weight, bias: LL.rms_norm(x, weight, bias, 1e-5), {"x": x, "weight": w, "bias": b}, analytic, r)


@settings(max_examples=8)
@given(seed=seeds, scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_swiglu_backward(seed, scale):
    rng = np.random.default_rng(seed)
    g, u = rand(rng, 3, 4, scale=scale), rand(rng, 3, 4)
    y, cache = LB.swiglu_forward(g, u)
    r = rand(rng, *y.shape)
    dg, du = LB.swiglu_backward(r, cache)
    check(lambda gate, up: LL.swiglu(gate, up), {"gate": g, "up": u}, {"gate": dg, "up": du}, r)


@pytest.mark.parametrize("n_rep", [1, 2, 3])
def test_repeat_kv_backward(n_rep):
    rng = np.random.default_rng(n_rep)
    x = rand(rng, 2, 2, 3, 2)
    y, cache = LB.repeat_kv_forward(x, n_rep)
    r = rand(rng, *y.shape)
    check(lambda x: LL.repeat_kv(x, n_rep), {"x": x}, {"x": LB.repeat_kv_backward(r, cache)}, r)


def _lin(rng, i, o, bias):
    return {"weight": rand(rng, i, o, scale=0.5)} | ({"bias": rand(rng, o, scale=0.1)} if bias else {})


@settings(max_examples=5)
@given(seed=seeds, T=st.integers(1, 4), heads=st.sampled_from([(2, 1), (4, 2), (2, 2)]), rope=st.booleans())
def test_grouped_rope_attention_backward(seed, T, heads, rope):
    rng = np.random.default_rng(seed)
    (H, H_kv), d = heads, 2
    C = H * d
    attn = {"c_attn": _lin(rng, C, (H + 2 * H_kv) * d, True), "c_proj": _lin(rng, C, C, False)}
    x = rand(rng, 2, T, C)
    opts = {"n_kv_head": H_kv} | ({"positions": np.arange(T) + 3, "rope_theta": 100.0} if rope else {})
    y, cache = FB.multi_head_attention_forward(x, attn, H, **opts)
    np.testing.assert_array_equal(y, F.multi_head_attention(x, attn, H, **opts))
    r = rand(rng, *y.shape)
    dx, g = FB.multi_head_attention_backward(r, cache)
    inputs = {"x": x} | {f"{m}.{leaf}": attn[m][leaf] for m in attn for leaf in attn[m]}
    analytic = {"x": dx} | {f"{m}.{leaf}": g[m][leaf] for m in g for leaf in g[m]}
    assert analytic.keys() == inputs.keys()
    check(lambda **kw: F.multi_head_attention(x, attn, H, **opts), inputs, analytic, r)


@settings(max_examples=5)
@given(seed=seeds, bias=st.booleans())
def test_swiglu_mlp_backward(seed, bias):
    rng = np.random.default_rng(seed)
    C, Fw = 3, 5
    p = {"c_gate": _lin(rng, C, Fw, bias), "c_fc": _lin(rng, C, Fw, bias), "c_proj": _lin(rng, Fw, C, bias)}
    x = rand(rng, 2, 2, C)
    y, cache = FB.mlp_forward(x, p)
    np.testing.assert_array_equal(y, F.mlp(x, p))
    r = rand(rng, *y.shape)
    dx, g = FB.mlp_backward(r, cache)
    inputs = {"x": x} | {f"{m}.{leaf}": p[m][leaf] for m in p for leaf in p[m]}
    analytic = {"x": dx} | {f"{m}.{leaf}": g[m][leaf] for m in g for leaf in g[m]}
    assert analytic.keys() == inputs.keys()
    check(lambda **kw: F.mlp(x, p), inputs, analytic, r)


LLAMA_CFG = GPTConfig.preset("llama-tiny", vocab_size=7, block_size=5, n_layer=2, n_head=4, n_embd=8, mlp_hidden=6)


@pytest.mark.parametrize(
    "cfg",
    [LLAMA_CFG, LLAMA_CFG.replace(tie_embeddings=True, qkv_bias=True, n_kv_head=1, norm="layernorm", bias=True)],
    ids=["llama", "tied-qkv-bias-mqa-layernorm"],
)
def test_whole_model_gradient_with_llama_options_by_finite_differences(cfg):
    """loss_and_grads over the whole model (RoPE, RMSNorm, SwiGLU, GQA, untied head) entry by entry."""
    rng = np.random.default_rng(4)
    params = map_params(lambda a: a + 0.2 * rng.standard_normal(a.shape), M.init_params(cfg, dtype=np.float64))
    idx = rng.integers(0, cfg.vocab_size, size=(2, 4))
    targets = rng.integers(0, cfg.vocab_size, size=(2, 4))
    loss, grads = MB.loss_and_grads(params, idx, targets, cfg)
    assert flatten_params(grads).keys() == flatten_params(params).keys()
    assert ("wpe" in grads) == (cfg.pos == "learned") and ("lm_head" in grads) != cfg.tie_embeddings
    for name, g in flatten_params(grads).items():
        p = flatten_params(params)[name]
        num = numeric_grad(lambda: float(M.loss(params, idx, targets, cfg)), p)
        assert rel_err(g, num) < 1e-6, name
    assert loss == M.loss(params, idx, targets, cfg)
