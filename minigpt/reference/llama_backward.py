"""Backpropagation through RoPE, RMSNorm, SwiGLU and the grouping of key/value heads, by hand.

Same conventions as ``minigpt.reference.functional_backward``: ``<piece>_forward`` returns (out, cache) with
the numbers of ``minigpt.reference.llama``; ``<piece>_backward(dy, cache)`` returns ∂L/∂inputs given dy = ∂L/∂out.
"""

from __future__ import annotations

import numpy as np

from minigpt.reference.llama import repeat_kv, rms_norm, rope, silu, swiglu


def rope_forward(x: np.ndarray, positions: np.ndarray, theta: float = 10000.0):
    """y = R(φ) x, a rotation of every channel pair; cache = (positions, θ)."""
    return rope(x, positions, theta), (positions, theta)


def rope_backward(dy: np.ndarray, cache) -> np.ndarray:
    """RoPE is linear and orthogonal, y = R x, so ∂L/∂x = Rᵀ dy = R(−φ) dy: turn the gradient back."""
    positions, theta = cache
    return rope(dy, -np.asarray(positions), theta)


def rms_norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, eps: float = 1e-5):
    """y = x̂ γ (+ β), x̂ = x / r, r = √(mean(x²) + ε); cache = (x, γ, has_bias, ε)."""
    return rms_norm(x, weight, bias, eps), (x, weight, bias is not None, eps)


def rms_norm_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """With g = dy ⊙ γ and ⟨·⟩ the mean over the C features of a row:

    ∂L/∂x = (g − x̂ ⟨g ⊙ x̂⟩) / r,   ∂L/∂γ = Σ_rows dy ⊙ x̂,   ∂L/∂β = Σ_rows dy

    (LayerNorm's formula without the ⟨g⟩ term: nothing was subtracted, so nothing flows back through μ).
    """
    x, weight, has_bias, eps = cache
    r = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = x / r
    g = dy * weight
    dx = (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True)) / r
    C = x.shape[-1]
    dw = (dy * xhat).reshape(-1, C).sum(axis=0)
    db = dy.reshape(-1, C).sum(axis=0) if has_bias else None
    return dx, dw, db


def swiglu_forward(gate: np.ndarray, up: np.ndarray):
    """y = SiLU(g) ⊙ u; cache = (g, u)."""
    return swiglu(gate, up), (gate, up)


def swiglu_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray]:
    """SiLU'(g) = σ(g)(1 + g(1 − σ(g))), so ∂L/∂g = dy ⊙ u ⊙ SiLU'(g) and ∂L/∂u = dy ⊙ SiLU(g)."""
    gate, up = cache
    s = 1.0 / (1.0 + np.exp(-gate))  # σ(g)
    return dy * up * s * (1.0 + gate * (1.0 - s)), dy * silu(gate)


def repeat_kv_forward(x: np.ndarray, n_rep: int):
    """(B, H_kv, T, d_k) → (B, H_kv·n_rep, T, d_k); cache = n_rep."""
    return repeat_kv(x, n_rep), n_rep


def repeat_kv_backward(dy: np.ndarray, cache) -> np.ndarray:
    """A key/value head used by n_rep query heads collects the sum of their gradients.

    (B, H, T, d_k) → (B, H_kv, T, d_k)."""
    n_rep = cache
    B, H, T, d = dy.shape
    return dy.reshape(B, H // n_rep, n_rep, T, d).sum(axis=2)
