"""The four pieces that turn GPT-2 into Llama, in plain NumPy: RoPE, RMSNorm, SwiGLU and grouped-query attention.

``minigpt.reference.functional`` composes them into the attention and MLP of a block when the config asks
(``GPTConfig.pos``, ``norm``, ``mlp``, ``n_kv_head``); ``llama_backward`` has their hand-written gradients.
Like ``functional``, every function keeps its inputs' dtype.
"""

from __future__ import annotations

import numpy as np


def rope_angles(positions: np.ndarray, d_k: int, theta: float = 10000.0, dtype=np.float64) -> np.ndarray:
    """φ_{t,i} = t · θ^(−2i/d_k) for i = 0..d_k/2 − 1: how far pair i of a vector at position t turns.

    positions: integers (...,) → angles (..., d_k/2). Low i turn fast (θ⁰ = 1 rad per step), high i slowly.
    """
    inv_freq = 1.0 / theta ** (np.arange(0, d_k, 2, dtype=np.float64) / d_k)  # (d_k/2,)
    return (np.asarray(positions, np.float64)[..., None] * inv_freq).astype(dtype)  # (..., d_k/2)


def rope(x: np.ndarray, positions: np.ndarray, theta: float = 10000.0) -> np.ndarray:
    """Rotary position embedding, half-split pairing (Llama's ``rotate_half`` layout):

    x = [x₁ | x₂] (the two halves of d_k),  RoPE(x)_t = [x₁ cos φ_t − x₂ sin φ_t | x₂ cos φ_t + x₁ sin φ_t]

    i.e. channel i and channel i + d_k/2 form a pair turned by φ_{t,i} (``rope_angles``). Rotations keep norms,
    and ⟨RoPE(q)_s, RoPE(k)_t⟩ depends on s − t only. x: (..., T, d_k); positions broadcastable to (..., T).
    """
    phi = rope_angles(positions, x.shape[-1], theta, x.dtype)  # (..., T, d_k/2)
    cos, sin = np.cos(phi), np.sin(phi)
    x1, x2 = np.split(x, 2, axis=-1)  # 2 × (..., T, d_k/2)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # (..., T, d_k)


def rms_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    """RMSNorm(x) = x / √(mean(x²) + ε) · γ (+ β) over the last axis: LayerNorm without centring."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # (..., 1)
    y = x / np.sqrt(ms + eps) * weight
    return y if bias is None else y + bias


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU(x) = x · σ(x) = x / (1 + e^(−x)) (also called swish)."""
    return x / (1.0 + np.exp(-x))


def swiglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """SwiGLU(g, u) = SiLU(g) ⊙ u: the gate g = x W_gate decides, per hidden unit, how much of u = x W_up passes."""
    return silu(gate) * up


def repeat_kv(x: np.ndarray, n_rep: int) -> np.ndarray:
    """(B, H_kv, T, d_k) → (B, H_kv·n_rep, T, d_k): query head h reads key/value head h // n_rep.

    Each key/value head is repeated n_rep times *in a row* (kv₀ kv₀ kv₁ kv₁, not kv₀ kv₁ kv₀ kv₁), the
    grouping of Llama's ``repeat_kv``; with n_rep = 1 (no grouping) it is the identity.
    """
    return x if n_rep == 1 else np.repeat(x, n_rep, axis=1)  # (B, H, T, d_k); GPT-2 needs no copy
