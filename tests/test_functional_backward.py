"""Each hand-written backward against central finite differences in float64.

For a piece y = f(x₁, x₂, ...) we pick a random cotangent r and check ∂/∂x of the scalar Σ r ⊙ f(...)
(what backward(r, cache) claims to return) entry by entry against (L(x + h eᵢ) − L(x − h eᵢ)) / 2h.
Relative error = ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖) must be < 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.config import GPTConfig
from minigpt.params import flatten_params
from minigpt.reference import functional as F
from minigpt.reference import functional_backward as FB
from minigpt.reference import model as M
from minigpt.reference import model_backward as MB

H = 1e-6
TOL = 1e-6


def numeric_grad(loss_of, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar loss_of() with respect to every entry of x (perturbed in place)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + H
        plus = loss_of()
        x[i] = old - H
        minus = loss_of()
        x[i] = old
        g[i] = (plus - minus) / (2 * H)
    return g


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    # The floor makes a gradient that is truly zero (e.g. dQ when T = 1: softmax over one key is 1)
    # compare absolutely instead of dividing 0 by 0.
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-8))


def check(fn, inputs: dict, analytic: dict, r: np.ndarray) -> None:
    """fn(**inputs) → array; analytic[name] = claimed ∂(Σ r ⊙ fn)/∂inputs[name]."""
    for name, grad in analytic.items():
        num = numeric_grad(lambda: float(np.sum(r * fn(**inputs))), inputs[name])
        assert grad.shape == inputs[name].shape, name
        assert grad.dtype == np.float64, name
        err = rel_err(grad, num)
        assert err < TOL, f"d/d{name}: relative error {err:.2e}"


seeds = st.integers(0, 2**32 - 1)


def rand(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


@settings(max_examples=8)
@given(seed=seeds, shape=st.sampled_from([(5,), (2, 3, 4), (1, 1, 6)]), bias=st.booleans())
def test_layer_norm_backward(seed, shape, bias):
    rng = np.random.default_rng(seed)
    x, w = rand(rng, *shape, scale=2.0), rand(rng, shape[-1])
    b = rand(rng, shape[-1]) if bias else None
    y, cache = FB.layer_norm_forward(x, w, b, 1e-5)
    np.testing.assert_array_equal(y, F.layer_norm(x, w, b, 1e-5))
    r = rand(rng, *shape)
    dx, dw, db = FB.layer_norm_backward(r, cache)
    inputs = {"x": x, "weight": w, "bias": b}
    analytic = {"x": dx, "weight": dw} | ({"bias": db} if bias else {})
    assert (db is None) == (not bias)
    check(lambda x, weight, bias: F.layer_norm(x, weight, bias, 1e-5), inputs, analytic, r)


@settings(max_examples=8)
@given(seed=seeds, scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_gelu_backward(seed, scale):
    rng = np.random.default_rng(seed)
    x = rand(rng, 3, 7, scale=scale)
    y, cache = FB.gelu_forward(x)
    r = rand(rng, 3, 7)
    check(lambda x: F.gelu(x), {"x": x}, {"x": FB.gelu_backward(r, cache)}, r)


@settings(max_examples=8)
@given(seed=seeds, lead=st.sampled_from([(4,), (2, 3), (1, 1)]), bias=st.booleans())
def test_linear_backward(seed, lead, bias):
    rng = np.random.default_rng(seed)
    x, w = rand(rng, *lead, 3), rand(rng, 3, 5)
    b = rand(rng, 5) if bias else None
    y, cache = FB.linear_forward(x, w, b)
    r = rand(rng, *lead, 5)
    dx, dw, db = FB.linear_backward(r, cache)
    assert (db is None) == (not bias)
    analytic = {"x": dx, "weight": dw} | ({"bias": db} if bias else {})
    check(lambda x, weight, bias: F.linear(x, weight, bias), {"x": x, "weight": w, "bias": b}, analytic, r)


def test_softmax_backward():
    rng = np.random.default_rng(0)
    x, r = rand(rng, 3, 6, scale=3.0), rand(rng, 3, 6)
    check(lambda x: F.softmax(x), {"x": x}, {"x": FB.softmax_backward(r, F.softmax(x))}, r)


@settings(max_examples=8)
@given(seed=seeds, T=st.integers(1, 5), causal=st.booleans(), d=st.sampled_from([1, 3]))
def test_scaled_dot_product_attention_backward(seed, T, causal, d):
    rng = np.random.default_rng(seed)
    q, k, v = (rand(rng, 2, 2, T, d) for _ in range(3))
    mask = F.causal_mask(T, np.float64) if causal else None
    out, cache = FB.scaled_dot_product_attention_forward(q, k, v, mask)
    np.testing.assert_array_equal(out, F.scaled_dot_product_attention(q, k, v, mask))
    r = rand(rng, *out.shape)
    dq, dk, dv = FB.scaled_dot_product_attention_backward(r, cache)
    assert np.linalg.norm(dv) > 0
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask), {"q": q, "k": k, "v": v},
          {"q": dq, "k": dk, "v": dv}, r)  # fmt: skip


def test_causal_attention_sends_no_gradient_to_the_future():
    """Query i depends only on keys/values j ≤ i: the cotangent of the first query row alone
    must give exactly zero gradient to keys and values 1..T-1."""
    rng = np.random.default_rng(1)
    T = 4
    q, k, v = (rand(rng, 1, 1, T, 3) for _ in range(3))
    _, cache = FB.scaled_dot_product_attention_forward(q, k, v, F.causal_mask(T, np.float64))
    r = np.zeros((1, 1, T, 3))
    r[..., 0, :] = 1.0
    dq, dk, dv = FB.scaled_dot_product_attention_backward(r, cache)
    assert np.all(dk[..., 1:, :] == 0) and np.all(dv[..., 1:, :] == 0)
    assert np.all(dq[..., 1:, :] == 0)
    assert np.any(dv[..., 0, :] != 0)


def test_split_merge_heads_backward():
    rng = np.random.default_rng(2)
    x = rand(rng, 2, 3, 6)
    y, cache = FB.split_heads_forward(x, 3)
    r = rand(rng, *y.shape)
    check(lambda x: F.split_heads(x, 3), {"x": x}, {"x": FB.split_heads_backward(r, cache)}, r)
    z = rand(rng, 2, 3, 4, 2)
    y, cache = FB.merge_heads_forward(z)
    r = rand(rng, *y.shape)
    check(lambda z: F.merge_heads(z), {"z": z}, {"z": FB.merge_heads_backward(r, cache)}, r)


def test_residual_backward():
    rng = np.random.default_rng(3)
    x, fx, r = rand(rng, 2, 3), rand(rng, 2, 3), rand(rng, 2, 3)
    _, cache = FB.residual_forward(x, fx)
    dx, dfx = FB.residual_backward(r, cache)
    check(lambda x, fx: x + fx, {"x": x, "fx": fx}, {"x": dx, "fx": dfx}, r)


def _attn_params(rng, C, bias):
    def lin(i, o):
        return {"weight": rand(rng, i, o, scale=0.5)} | ({"bias": rand(rng, o, scale=0.1)} if bias else {})

    return {"c_attn": lin(C, 3 * C), "c_proj": lin(C, C)}


@settings(max_examples=5)
@given(seed=seeds, T=st.integers(1, 4), n_head=st.sampled_from([1, 2]), bias=st.booleans())
def test_multi_head_attention_backward(seed, T, n_head, bias):
    rng = np.random.default_rng(seed)
    C = 4
    x, attn = rand(rng, 2, T, C), _attn_params(rng, C, bias)
    y, cache = FB.multi_head_attention_forward(x, attn, n_head)
    np.testing.assert_array_equal(y, F.multi_head_attention(x, attn, n_head))
    r = rand(rng, *y.shape)
    dx, g = FB.multi_head_attention_backward(r, cache)
    inputs = {"x": x} | {f"{m}.{leaf}": attn[m][leaf] for m in attn for leaf in attn[m]}
    analytic = {"x": dx} | {f"{m}.{leaf}": g[m][leaf] for m in g for leaf in g[m]}
    assert analytic.keys() == inputs.keys()
    check(lambda **kw: F.multi_head_attention(x, attn, n_head), inputs, analytic, r)


@settings(max_examples=5)
@given(seed=seeds, bias=st.booleans())
def test_mlp_backward(seed, bias):
    rng = np.random.default_rng(seed)
    C = 3

    def lin(i, o):
        return {"weight": rand(rng, i, o, scale=0.5)} | ({"bias": rand(rng, o)} if bias else {})

    x, p = rand(rng, 2, 2, C), {"c_fc": lin(C, 4 * C), "c_proj": lin(4 * C, C)}
    y, cache = FB.mlp_forward(x, p)
    r = rand(rng, *y.shape)
    dx, g = FB.mlp_backward(r, cache)
    inputs = {"x": x} | {f"{m}.{leaf}": p[m][leaf] for m in p for leaf in p[m]}
    analytic = {"x": dx} | {f"{m}.{leaf}": g[m][leaf] for m in g for leaf in g[m]}
    assert analytic.keys() == inputs.keys()
    check(lambda **kw: F.mlp(x, p), inputs, analytic, r)


@settings(max_examples=8)
@given(seed=seeds, V=st.integers(2, 4), B=st.integers(1, 3), T=st.integers(1, 6))
def test_embedding_backward_scatter_adds_repeated_ids(seed, V, B, T):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))  # few ids, many positions: repeats are the rule
    w = rand(rng, V, 3)
    y, cache = MB.embedding_forward(ids, w)
    r = rand(rng, *y.shape)
    dw = MB.embedding_backward(r, cache)
    check(lambda weight: weight[ids], {"weight": w}, {"weight": dw}, r)
    # Independent brute force: row v is the sum of r over positions holding v.
    for v in range(V):
        np.testing.assert_allclose(dw[v], r[ids == v].sum(axis=0), rtol=1e-12, atol=1e-15)


def test_tied_lm_head_backward():
    rng = np.random.default_rng(4)
    h, wte = rand(rng, 2, 3, 4), rand(rng, 5, 4)
    y, cache = MB.tied_lm_head_forward(h, wte)
    r = rand(rng, *y.shape)
    dh, dwte = MB.tied_lm_head_backward(r, cache)
    check(lambda h, wte: h @ wte.T, {"h": h, "wte": wte}, {"h": dh, "wte": dwte}, r)


@settings(max_examples=8)
@given(seed=seeds, B=st.integers(1, 3), T=st.integers(1, 4), ignore_index=st.sampled_from([-1, -100, 2]))
def test_cross_entropy_backward_with_ignore_index(seed, B, T, ignore_index):
    rng = np.random.default_rng(seed)
    V = 5
    logits = rand(rng, B, T, V, scale=2.0)
    targets = rng.integers(0, V, size=(B, T))
    drop = rng.random((B, T)) < 0.4
    drop.flat[0] = False  # at least one target counts ...
    if targets.flat[0] == ignore_index:  # ... even when ignore_index is a vocabulary id (2) that was drawn there
        targets.flat[0] = (ignore_index + 1) % V
    targets = np.where(drop, ignore_index, targets)
    loss, cache = MB.cross_entropy_forward(logits, targets, ignore_index)
    assert loss == M.cross_entropy(logits, targets, ignore_index)
    dlogits = MB.cross_entropy_backward(1.0, cache)
    num = numeric_grad(lambda: float(M.cross_entropy(logits, targets, ignore_index)), logits)
    assert rel_err(dlogits, num) < TOL
    ignored = targets == ignore_index
    assert np.all(dlogits[ignored] == 0.0)
    # Each kept row of softmax − onehot sums to zero.
    np.testing.assert_allclose(dlogits.sum(axis=-1), 0.0, atol=1e-15)


@settings(max_examples=4)
@given(seed=seeds, T=st.integers(1, 4), bias=st.booleans())
def test_whole_block_backward(seed, T, bias):
    cfg = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4, bias=bias)
    rng = np.random.default_rng(seed)
    p = M.init_params(cfg, seed=seed % 1000, dtype=np.float64)["h"][0]
    for name in ("ln_1", "ln_2"):  # move off the γ=1, β=0 init so their gradients are generic
        p[name] = {k: v + rand(rng, *v.shape, scale=0.3) for k, v in p[name].items()}
    for m in ("attn", "mlp"):
        for lin in p[m].values():
            lin["weight"] = rand(rng, *lin["weight"].shape, scale=0.4)
    x = rand(rng, 2, T, cfg.n_embd)
    y, cache = MB.block_forward(x, p, cfg)
    np.testing.assert_array_equal(y, M.block(x, p, cfg))
    r = rand(rng, *y.shape)
    dx, g = MB.block_backward(r, cache)
    leaves = [(m, s, leaf) for m in ("attn", "mlp") for s in p[m] for leaf in p[m][s]]
    leaves += [(m, None, leaf) for m in ("ln_1", "ln_2") for leaf in p[m]]
    inputs = {"x": x} | {f"{m}.{s}.{leaf}": (p[m][s] if s else p[m])[leaf] for m, s, leaf in leaves}
    analytic = {"x": dx} | {f"{m}.{s}.{leaf}": (g[m][s] if s else g[m])[leaf] for m, s, leaf in leaves}
    assert flatten_params(g).keys() == flatten_params(p).keys()
    check(lambda **kw: M.block(x, p, cfg), inputs, analytic, r)


def test_backward_keeps_float32():
    rng = np.random.default_rng(5)
    x = rand(rng, 2, 3, 4).astype(np.float32)
    w, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    _, cache = FB.layer_norm_forward(x, w, b)
    assert all(g.dtype == np.float32 for g in FB.layer_norm_backward(x, cache))
    _, cache = FB.gelu_forward(x)
    assert FB.gelu_backward(x, cache).dtype == np.float32
    targets = np.array([[0, 1, -1], [2, 3, 1]])
    _, cache = MB.cross_entropy_forward(x, targets)
    assert MB.cross_entropy_backward(1.0, cache).dtype == np.float32


@pytest.mark.parametrize("dloss", [0.5, 2.0])
def test_cross_entropy_backward_scales_with_upstream(dloss):
    rng = np.random.default_rng(6)
    logits, targets = rand(rng, 1, 3, 4), np.array([[0, 3, 1]])
    _, cache = MB.cross_entropy_forward(logits, targets)
    np.testing.assert_allclose(
        MB.cross_entropy_backward(dloss, cache), dloss * MB.cross_entropy_backward(1.0, cache), rtol=1e-15
    )
