"""The textbook pieces of a GPT, in plain NumPy.

Every function keeps the dtype of its inputs: constants are Python floats (NumPy treats them
as "weak" and does not promote), never NumPy float64 scalars, which would silently turn a
float32 computation into a float64 one on NumPy 2.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping

import numpy as np

from minigpt.reference.hooks import see
from minigpt.reference.llama import repeat_kv, rms_norm, rope, swiglu


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(x)_i = exp(x_i - max x) / Σ_j exp(x_j - max x).

    Subtracting the max changes nothing mathematically and keeps exp() from overflowing.
    """
    e = x - np.max(x, axis=axis, keepdims=True)  # a new array: the steps below reuse it instead of allocating
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax(x)_i = x_i - max x - log Σ_j exp(x_j - max x)."""
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm(x) = (x - μ) / √(σ² + ε) · γ + β over the last axis (biased variance)."""
    xc = x - np.mean(x, axis=-1, keepdims=True)  # x - μ
    var = np.mean(xc * xc, axis=-1, keepdims=True)  # (..., 1)
    xc *= 1.0 / np.sqrt(var + eps)  # in place, here and below: one (..., C) buffer, not four
    xc *= weight
    if bias is not None:
        xc += bias
    return xc


def gelu(x: np.ndarray) -> np.ndarray:
    """GPT-2's GELU, tanh form: ½x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    # x * x * x, not x**3: NumPy evaluates float32 x**3 with a slow pow(), ~500× slower. The steps run in place in
    # one buffer u (the (T, 4C) activations are the model's largest after the logits): one allocation, not nine.
    u = x * x
    u *= 0.044715 * x  # u = 0.044715x³
    u += x  # x + 0.044715x³
    u *= math.sqrt(2.0 / math.pi)
    np.tanh(u, out=u)
    u += 1.0  # 1 + tanh(...)
    u *= 0.5 * x
    return u


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W + b with W stored (in, out), as in GPT-2's Conv1D."""
    y = x @ weight
    if bias is not None:
        y += bias  # in place: y is new
    return y


def causal_mask(T: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Additive mask M (T, T): 0 where key j ≤ query i, -∞ where j > i (the future)."""
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    return np.where(future, -np.inf, 0.0).astype(dtype)


def scaled_dot_product_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    return_weights: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Attention(Q, K, V) = softmax(QKᵀ/√d_k + M) V.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v); mask broadcastable to (..., T_q, T_k), either
    additive M (0 where query i may attend key j, -∞ where not) or boolean B, True where i may attend j (as in
    ``torch.nn.functional.scaled_dot_product_attention``): M = 0 where B, -∞ where not. Returns (..., T_q, d_v),
    and the weights A = softmax(...) (..., T_q, T_k) too when ``return_weights``.
    """
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2)  # (..., T_q, T_k)
    scores *= 1.0 / math.sqrt(d_k)  # in place, as the mask below: the (T_q, T_k) scores are large at long T
    if mask is not None and np.asarray(mask).dtype == np.bool_:
        scores = np.where(mask, scores, -np.inf)  # adding a boolean would add 1 where allowed, 0 where not
    elif mask is not None:
        scores += mask  # broadcast over the leading axes, cast to the scores' dtype (0 and -∞ are exact)
    weights = softmax(scores, axis=-1)  # (..., T_q, T_k)
    out = weights @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """(B, T, C) → (B, H, T, C/H): head h owns channels [h·d_k, (h+1)·d_k)."""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, T, d_k) → (B, T, H·d_k): Concat(head_1, …, head_H) along channels."""
    B, H, T, d_k = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * d_k)


def project_qkv(
    x: np.ndarray,
    attn: dict,
    n_head: int,
    n_kv_head: int | None = None,
    positions: np.ndarray | None = None,
    rope_theta: float = 10000.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[Q | K | V] = x W_attn + b_attn, split into heads: q (B, H, T, d_k), k and v (B, H_kv, T, d_k).

    c_attn's columns are H query heads, then H_kv key heads, then H_kv value heads (H_kv = n_kv_head, default
    H: GPT-2's C → 3C). With ``positions`` (integers broadcastable to (B, T)) q and k — never v — get RoPE.
    """
    H_kv = n_head if n_kv_head is None else n_kv_head
    qkv = linear(x, attn["c_attn"]["weight"], attn["c_attn"].get("bias"))  # (B, T, (H + 2H_kv)·d_k)
    d_k = qkv.shape[-1] // (n_head + 2 * H_kv)
    q, k, v = np.split(qkv, [n_head * d_k, (n_head + H_kv) * d_k], axis=-1)
    q, k, v = split_heads(q, n_head), split_heads(k, H_kv), split_heads(v, H_kv)
    if positions is not None:
        at = np.asarray(positions)[..., None, :]  # (B or 1, 1, T): the same positions for every head
        q, k = rope(q, at, rope_theta), rope(k, at, rope_theta)
    return q, k, v


def multi_head_attention(
    x: np.ndarray,
    attn: dict,
    n_head: int,
    *,
    n_kv_head: int | None = None,
    positions: np.ndarray | None = None,
    rope_theta: float = 10000.0,
    return_weights: bool = False,
    capture: MutableMapping | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Causal MultiHead(x) = Concat(head_1, …, head_H) Wᴼ, head_i = Attention(x W_i^Q, x W_i^K, x W_i^V).

    ``attn`` holds GPT-2's fused projection ``c_attn`` (C → 3C: [Q | K | V]) and the output
    projection ``c_proj`` (Wᴼ, C → C), each ``{"weight": (in, out), "bias": (out,)}``.
    x: (B, T, C) → (B, T, C); weights (B, H, T, T) too when ``return_weights``.
    Llama's options (``project_qkv``): ``n_kv_head`` < n_head shares each key/value head among
    n_head / n_kv_head query heads (``repeat_kv``); ``positions`` rotates q and k (RoPE).
    ``capture`` (``minigpt.reference.hooks``): q (after RoPE), k, v (before sharing), weights, z (each head's
    output, (B, H, T, d_k)) and out (B, T, C).
    """
    T = x.shape[-2]
    q, k, v = project_qkv(x, attn, n_head, n_kv_head, positions, rope_theta)  # (B, H, T, d_k), 2 × (B, H_kv, T, d_k)
    q, k, v = see(capture, "q", q), see(capture, "k", k), see(capture, "v", v)
    n_rep = n_head // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, T, d_k)
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(T, x.dtype), return_weights=True)
    see(capture, "weights", weights)  # recorded only: out is already computed from them
    out = see(capture, "z", out)  # (B, H, T, d_k)
    y = linear(merge_heads(out), attn["c_proj"]["weight"], attn["c_proj"].get("bias"))  # (B, T, C)
    y = see(capture, "out", y)
    return (y, weights) if return_weights else y


def mlp(x: np.ndarray, mlp_params: dict, *, capture: MutableMapping | None = None) -> np.ndarray:
    """MLP(x) = GELU(x W_fc + b_fc) W_proj + b_proj, widening C → 4C → C; with a gate ``c_gate`` (Llama)
    SwiGLU instead: (SiLU(x W_gate) ⊙ x W_fc) W_proj, C → F → C. ``capture``: act (B, T, F) and out (B, T, C)."""
    h = linear(x, mlp_params["c_fc"]["weight"], mlp_params["c_fc"].get("bias"))  # (B, T, F)
    if "c_gate" in mlp_params:
        h = swiglu(linear(x, mlp_params["c_gate"]["weight"], mlp_params["c_gate"].get("bias")), h)
    else:
        h = gelu(h)
    h = see(capture, "act", h)
    return see(capture, "out", linear(h, mlp_params["c_proj"]["weight"], mlp_params["c_proj"].get("bias")))


def norm(x: np.ndarray, p: dict, kind: str = "layernorm", eps: float = 1e-5) -> np.ndarray:
    """The block's normalisation with gains ``p`` ({"weight", "bias"?}): ``layer_norm`` or ``rms_norm``
    (``GPTConfig.norm``)."""
    fn = rms_norm if kind == "rmsnorm" else layer_norm
    return fn(x, p["weight"], p.get("bias"), eps)
