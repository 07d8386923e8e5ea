"""Backpropagation through the textbook pieces, by hand.

Every piece comes as a pair::

    out, cache = <piece>_forward(inputs...)      # the forward of ``functional.py``, plus what backward needs
    grads      = <piece>_backward(dout, cache)   # dL/d(inputs) given dout = dL/d(out)

The forwards call the functions of ``minigpt.reference.functional`` so that the cached path computes
exactly the numbers of ``reference.forward``; the backwards recompute small intermediates (x̂, σ) from
the cached inputs rather than duplicating the forward code. The chain rule for a scalar loss L is
written with dy ≡ ∂L/∂y throughout. Like the forwards, the backwards keep the inputs' dtype.
"""

from __future__ import annotations

import math

import numpy as np

from minigpt.reference.functional import (
    causal_mask,
    gelu,
    layer_norm,
    linear,
    merge_heads,
    project_qkv,
    scaled_dot_product_attention,
    split_heads,
)
from minigpt.reference.llama_backward import (
    repeat_kv_backward,
    repeat_kv_forward,
    rms_norm_backward,
    rms_norm_forward,
    rope_backward,
    rope_forward,
    swiglu_backward,
    swiglu_forward,
)

# -- elementwise and affine pieces ---------------------------------------------------------------


def weight_bias(dw: np.ndarray, db: np.ndarray | None) -> dict:
    """{"weight": dW, "bias": db} in the parameter layout (no "bias" entry for bias-free layers)."""
    return {"weight": dw} if db is None else {"weight": dw, "bias": db}


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None):
    """y = x W + b, W (in, out); cache = (x, W, has_bias)."""
    return linear(x, weight, bias), (x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """For y = x W + b over rows r (all leading axes flattened):

    ∂L/∂x = dy Wᵀ,   ∂L/∂W = Σ_r x_rᵀ dy_r = Xᵀ dY,   ∂L/∂b = Σ_r dy_r.

    Returns (dx, dW, db); db is None when the layer has no bias.
    """
    x, weight, has_bias = cache
    dx = dy @ weight.T  # (..., in)
    x2 = x.reshape(-1, x.shape[-1])  # (R, in)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (R, out)
    # dW_io = Σ_r x_ri dy_ro. einsum rather than x2.T @ dy2: OpenBLAS's threaded transposed GEMM
    # runs ~8× slower on a busy 2-core machine, and this is the hot spot of NumPy training.
    dw = np.einsum("ri,ro->io", x2, dy2)  # (in, out)
    db = dy2.sum(axis=0) if has_bias else None
    return dx, dw, db


def layer_norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, eps: float = 1e-5):
    """y = x̂ γ + β with x̂ = (x − μ)/σ, σ = √(var + ε), over the last axis; cache = (x, γ, has_bias, ε)."""
    return layer_norm(x, weight, bias, eps), (x, weight, bias is not None, eps)


def layer_norm_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """With g = dy ⊙ γ and means ⟨·⟩ over the C features of one row:

    ∂L/∂x = (1/σ) (g − ⟨g⟩ − x̂ ⟨g ⊙ x̂⟩),   ∂L/∂γ = Σ_rows dy ⊙ x̂,   ∂L/∂β = Σ_rows dy.

    (μ and σ depend on every x_j of the row: that is where the two mean terms come from.)
    Returns (dx, dγ, dβ); dβ is None without bias.
    """
    x, weight, has_bias, eps = cache
    mu = np.mean(x, axis=-1, keepdims=True)  # (..., 1)
    var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)  # (..., 1)
    sigma = np.sqrt(var + eps)
    xhat = (x - mu) / sigma  # (..., C)
    g = dy * weight
    dx = (g - np.mean(g, axis=-1, keepdims=True) - xhat * np.mean(g * xhat, axis=-1, keepdims=True)) / sigma
    C = x.shape[-1]
    dw = (dy * xhat).reshape(-1, C).sum(axis=0)
    db = dy.reshape(-1, C).sum(axis=0) if has_bias else None
    return dx, dw, db


def gelu_forward(x: np.ndarray):
    """y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³); cache = x."""
    return gelu(x), x


def gelu_backward(dy: np.ndarray, cache) -> np.ndarray:
    """GELU'(x) = ½(1 + tanh u) + ½x (1 − tanh² u) √(2/π)(1 + 3·0.044715x²);  ∂L/∂x = dy ⊙ GELU'(x)."""
    x = cache
    c = math.sqrt(2.0 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x * x * x))  # x*x*x: float32 x**3 is a slow pow() in NumPy
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x))


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """For y = softmax(x): ∂y_i/∂x_j = y_i(δ_ij − y_j), so ∂L/∂x = y ⊙ (dy − Σ_i dy_i y_i).

    Positions with y = 0 (masked with −∞) get exactly zero gradient.
    """
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def residual_forward(x: np.ndarray, fx: np.ndarray):
    """y = x + f(x): the skip connection; nothing to cache."""
    return x + fx, None


def residual_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray]:
    """∂y/∂x = ∂y/∂f = I: the gradient is copied unchanged into both the skip path and the branch.

    Returns (dx_skip, dfx). The branch's own backward adds its contribution to dx_skip.
    """
    return dy, dy


# -- attention ------------------------------------------------------------------------------------


def scaled_dot_product_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None):
    """O = A V with A = softmax(S), S = QKᵀ/√d_k + M; cache = (q, k, v, A)."""
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    return out, (q, k, v, weights)


def scaled_dot_product_attention_backward(dout: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of O = A V, A = softmax(S), S = QKᵀ/√d_k + M (batched over leading axes):

    ∂L/∂V = Aᵀ dO,   ∂L/∂A = dO Vᵀ,   ∂L/∂S = A ⊙ (∂L/∂A − rowsum(∂L/∂A ⊙ A)),
    ∂L/∂Q = (∂L/∂S) K / √d_k,   ∂L/∂K = (∂L/∂S)ᵀ Q / √d_k.

    The additive mask M is a constant; where it is −∞, A = 0 and so ∂L/∂S = 0: the future gets no gradient.
    Returns (dq, dk, dv).
    """
    q, k, v, weights = cache
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = np.swapaxes(weights, -1, -2) @ dout  # (..., T_k, d_v)
    dweights = dout @ np.swapaxes(v, -1, -2)  # (..., T_q, T_k)
    dscores = softmax_backward(dweights, weights)  # (..., T_q, T_k)
    dq = dscores @ k * scale  # (..., T_q, d_k)
    dk = np.swapaxes(dscores, -1, -2) @ q * scale  # (..., T_k, d_k)
    return dq, dk, dv


def split_heads_forward(x: np.ndarray, n_head: int):
    """(B, T, C) → (B, H, T, C/H); cache = None (a reshape and a transpose)."""
    return split_heads(x, n_head), None


def split_heads_backward(dout: np.ndarray, cache) -> np.ndarray:
    """A permutation of entries: its backward is the inverse permutation, merge_heads. (B, H, T, d_k) → (B, T, C)."""
    return merge_heads(dout)


def merge_heads_forward(x: np.ndarray):
    """(B, H, T, d_k) → (B, T, H·d_k); cache = H."""
    return merge_heads(x), x.shape[1]


def merge_heads_backward(dout: np.ndarray, cache) -> np.ndarray:
    """The inverse permutation, split_heads. (B, T, C) → (B, H, T, d_k)."""
    return split_heads(dout, cache)


def multi_head_attention_forward(
    x: np.ndarray,
    attn: dict,
    n_head: int,
    *,
    n_kv_head: int | None = None,
    positions: np.ndarray | None = None,
    rope_theta: float = 10000.0,
):
    """Causal MultiHead(x) = Concat(head_1..head_H) Wᴼ + bᴼ, [Q|K|V] = x W_attn + b_attn. (B, T, C) → (B, T, C).

    With Llama's options as in ``functional.multi_head_attention``: RoPE on q and k, then each of the
    n_kv_head key/value heads repeated for its group of query heads.
    """
    T = x.shape[-2]
    q, k, v = project_qkv(x, attn, n_head, n_kv_head)  # (B, H, T, d_k), 2 × (B, H_kv, T, d_k)
    c_attn = (x, attn["c_attn"]["weight"], "bias" in attn["c_attn"])  # linear_forward's cache of the projection
    rot = None
    if positions is not None:
        at = np.asarray(positions)[..., None, :]  # (B or 1, 1, T)
        (q, rot), (k, _) = rope_forward(q, at, rope_theta), rope_forward(k, at, rope_theta)
    n_rep = n_head // k.shape[1]
    (k, rep), (v, _) = repeat_kv_forward(k, n_rep), repeat_kv_forward(v, n_rep)  # (B, H, T, d_k)
    out, sdpa = scaled_dot_product_attention_forward(q, k, v, causal_mask(T, x.dtype))  # (B, H, T, d_k)
    merged, merge = merge_heads_forward(out)  # (B, T, C)
    y, c_proj = linear_forward(merged, attn["c_proj"]["weight"], attn["c_proj"].get("bias"))
    return y, (c_attn, rot, rep, sdpa, merge, c_proj, n_head)


def multi_head_attention_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, dict]:
    """Run the forward's steps backwards: c_proj → merge → attention → repeat → RoPE → split → c_attn.

    The fused projection's gradient is the concatenation [∂L/∂Q | ∂L/∂K | ∂L/∂V] along channels,
    mirroring the split of its output. Returns (dx, {"c_attn": {...}, "c_proj": {...}}).
    """
    c_attn, rot, rep, sdpa, merge, c_proj, n_head = cache
    dmerged, dw_proj, db_proj = linear_backward(dy, c_proj)  # (B, T, C)
    dout = merge_heads_backward(dmerged, merge)  # (B, H, T, d_k)
    dq, dk, dv = scaled_dot_product_attention_backward(dout, sdpa)
    dk, dv = repeat_kv_backward(dk, rep), repeat_kv_backward(dv, rep)  # (B, H_kv, T, d_k)
    if rot is not None:
        dq, dk = rope_backward(dq, rot), rope_backward(dk, rot)
    dqkv = np.concatenate([split_heads_backward(d, None) for d in (dq, dk, dv)], axis=-1)  # (B, T, (H + 2H_kv)d_k)
    dx, dw_attn, db_attn = linear_backward(dqkv, c_attn)
    return dx, {"c_attn": weight_bias(dw_attn, db_attn), "c_proj": weight_bias(dw_proj, db_proj)}


def mlp_forward(x: np.ndarray, mlp_params: dict):
    """MLP(x) = GELU(x W_fc + b_fc) W_proj + b_proj, C → 4C → C; with ``c_gate``, SwiGLU:
    (SiLU(x W_gate) ⊙ x W_fc) W_proj."""
    h, c_fc = linear_forward(x, mlp_params["c_fc"]["weight"], mlp_params["c_fc"].get("bias"))  # (B, T, F)
    c_gate = None
    if "c_gate" in mlp_params:
        g, c_gate = linear_forward(x, mlp_params["c_gate"]["weight"], mlp_params["c_gate"].get("bias"))  # (B, T, F)
        a, act = swiglu_forward(g, h)
    else:
        a, act = gelu_forward(h)
    y, c_proj = linear_forward(a, mlp_params["c_proj"]["weight"], mlp_params["c_proj"].get("bias"))  # (B, T, C)
    return y, (c_fc, c_gate, act, c_proj)


def mlp_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, dict]:
    """∂L/∂x through c_proj, the activation (GELU, or SwiGLU's two inputs), c_fc (and c_gate) in turn; x feeds
    both of SwiGLU's projections, so its gradient is their sum. Returns (dx, {"c_fc", "c_proj"[, "c_gate"]})."""
    c_fc, c_gate, act, c_proj = cache
    da, dw_proj, db_proj = linear_backward(dy, c_proj)
    grads = {}
    if c_gate is None:
        dh = gelu_backward(da, act)
    else:
        dg, dh = swiglu_backward(da, act)
        dx_gate, dw_gate, db_gate = linear_backward(dg, c_gate)
        grads["c_gate"] = weight_bias(dw_gate, db_gate)
    dx, dw_fc, db_fc = linear_backward(dh, c_fc)
    if c_gate is not None:
        dx = dx + dx_gate
    return dx, grads | {"c_fc": weight_bias(dw_fc, db_fc), "c_proj": weight_bias(dw_proj, db_proj)}


def norm_forward(x: np.ndarray, p: dict, kind: str = "layernorm", eps: float = 1e-5):
    """``functional.norm`` with its cache: LayerNorm or RMSNorm (``GPTConfig.norm``)."""
    fn = rms_norm_forward if kind == "rmsnorm" else layer_norm_forward
    y, cache = fn(x, p["weight"], p.get("bias"), eps)
    return y, (kind, cache)


def norm_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, dict]:
    """(dx, {"weight": dγ, "bias"?: dβ}) through the norm ``norm_forward`` applied."""
    kind, inner = cache
    dx, dw, db = (rms_norm_backward if kind == "rmsnorm" else layer_norm_backward)(dy, inner)
    return dx, weight_bias(dw, db)
