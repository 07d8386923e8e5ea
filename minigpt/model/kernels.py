"""Fast paths for training: the same functions as ``minigpt.model``, with hand-written backward passes.

``GPT(cfg, fast=True)`` (and ``TrainConfig.fast_kernels``, on by default) swaps three pieces of the plain
model for these. Each computes the same numbers as the plain code (``tests/test_model_kernels.py`` checks values
and gradients against it); what changes is what is kept for the backward pass and how much work it does:

- ``causal_attention``: the plain version materialises the (B, H, T, T) weights twice (scores and
  softmax) and autodiff keeps them for the backward pass. Here queries go in blocks of ``block_size``;
  block i only meets keys ``0 .. end_i`` (the rest is masked anyway: 3/8 less work at T = 256 in blocks
  of 64). The backward pass reuses just those blocks of the weights, or, for long sequences, recomputes
  them from the saved log-sum-exp — the recomputation idea of FlashAttention (Dao et al., 2022),
  without its tiling of the keys.
- ``layer_norm``: keeps x, μ and 1/σ (not the normalised copy) and applies the closed-form gradient.
- ``gelu``: keeps x only (not the tanh) and differentiates the formula directly.

Why it matters on a CPU: the step is limited by memory traffic as much as by FLOPs, and every saved
activation is written in the forward pass and read back in the backward pass.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

# -- causal attention ----------------------------------------------------------------------------
BLOCK_SIZE = 64  # queries per block: of 32, 64, 128 and T, the fastest train step at T = 256 on a 2-core CPU
KEEP_WEIGHTS_UP_TO = 512  # longest T whose weights the backward pass reuses; longer T recomputes them


def _blocks(T: int, block_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + block_size, T)) for start in range(0, T, block_size)]


def _scores(q_scaled: jax.Array, k: jax.Array, start: int, stop: int) -> tuple[jax.Array, jax.Array]:
    """Scores of queries start..stop against keys 0..stop, and the causal mask (key j ≤ query i)."""
    s = q_scaled[:, :, start:stop] @ k[:, :, :stop].swapaxes(-1, -2)  # (B, H, stop-start, stop)
    mask = jnp.arange(stop)[None, :] <= jnp.arange(start, stop)[:, None]  # (stop-start, stop)
    return s, mask


def _keeps_weights(T: int, keep_weights: bool | None) -> bool:
    return T <= KEEP_WEIGHTS_UP_TO if keep_weights is None else keep_weights


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def causal_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, block_size: int = BLOCK_SIZE, keep_weights: bool | None = None
) -> jax.Array:
    """softmax(Q Kᵀ/√d_k + M) V with the causal mask M, for q, k, v of shape (B, H, T, d_k).

    Equal to ``minigpt.model``'s attention (and ``minigpt.reference.scaled_dot_product_attention``).
    ``keep_weights``: keep the weights P (only their causal blocks) for the backward pass, or keep the
    log-sum-exp and recompute P there (FlashAttention's choice: memory O(T) instead of O(T²)).
    ``None`` keeps them up to T = ``KEEP_WEIGHTS_UP_TO``, where they are small and the recomputation
    (another Q Kᵀ and exp) costs more time than the memory saves.
    """
    return _attention_fwd(q, k, v, block_size, keep_weights)[0]


def _attention_fwd(q, k, v, block_size, keep_weights):
    T, d = q.shape[-2], q.shape[-1]
    keep = _keeps_weights(T, keep_weights)
    q_scaled = q * (1.0 / math.sqrt(d))  # scaling Q (T·d) is cheaper than scaling QKᵀ (T·T)
    outs, saved = [], []
    for start, stop in _blocks(T, block_size):
        s, mask = _scores(q_scaled, k, start, stop)
        s = jnp.where(mask, s, -jnp.inf)
        m = jnp.max(s, axis=-1, keepdims=True)  # (B, H, rows, 1); finite: every query sees itself
        e = jnp.exp(s - m)
        l = jnp.sum(e, axis=-1, keepdims=True)
        if keep:
            p = e / l  # (B, H, rows, stop)
            outs.append(p @ v[:, :, :stop])  # (B, H, rows, d)
            saved.append(p)
        else:
            outs.append((e @ v[:, :, :stop]) / l)  # (B, H, rows, d)
            saved.append(m + jnp.log(l))  # (B, H, rows, 1): log Σ_j exp(s_ij), enough to rebuild P
    o = jnp.concatenate(outs, axis=2)  # (B, H, T, d)
    return o, (q_scaled, k, v, tuple(saved))


def _attention_bwd(block_size, keep_weights, res, do):
    """dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = dS K/√d,  dK = dSᵀ Q/√d.

    P is the kept weights, or exp(S − lse) recomputed block by block.
    """
    q_scaled, k, v, saved = res
    T, d = q_scaled.shape[-2], q_scaled.shape[-1]
    keep = _keeps_weights(T, keep_weights)
    dqs, dk, dv = [], jnp.zeros_like(k), jnp.zeros_like(v)
    for (start, stop), kept in zip(_blocks(T, block_size), saved, strict=True):
        if keep:
            p = kept  # (B, H, rows, stop)
        else:
            s, mask = _scores(q_scaled, k, start, stop)
            p = jnp.where(mask, jnp.exp(s - kept), 0.0)  # (B, H, rows, stop)
        do_i = do[:, :, start:stop]  # (B, H, rows, d)
        dv = dv.at[:, :, :stop].add(p.swapaxes(-1, -2) @ do_i)
        dp = do_i @ v[:, :, :stop].swapaxes(-1, -2)  # (B, H, rows, stop)
        ds = p * (dp - jnp.sum(dp * p, axis=-1, keepdims=True))
        dqs.append(ds @ k[:, :, :stop])
        dk = dk.at[:, :, :stop].add(ds.swapaxes(-1, -2) @ q_scaled[:, :, start:stop])
    dq = jnp.concatenate(dqs, axis=2) * (1.0 / math.sqrt(d))  # (B, H, T, d)
    return dq, dk, dv


causal_attention.defvjp(_attention_fwd, _attention_bwd)


# -- layer norm ----------------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, weight: jax.Array, bias: jax.Array | None, eps: float) -> jax.Array:
    """(x − μ) / √(σ² + ε) · γ + β over the last axis (β may be None)."""
    return _layer_norm_fwd(x, weight, bias, eps)[0]


def _layer_norm_fwd(x, weight, bias, eps):
    mu = jnp.mean(x, axis=-1, keepdims=True)  # (..., 1)
    xc = x - mu
    rstd = jax.lax.rsqrt(jnp.mean(xc * xc, axis=-1, keepdims=True) + eps)  # (..., 1)
    y = xc * rstd * weight
    return (y if bias is None else y + bias), (x, mu, rstd, weight, bias)


def _layer_norm_bwd(eps, res, dy):
    """x̂ = (x − μ)/σ, g = dy ⊙ γ:  dx = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ,  dγ = Σ dy ⊙ x̂,  dβ = Σ dy."""
    x, mu, rstd, weight, bias = res
    xhat = (x - mu) * rstd  # recomputed: one cheap pass instead of keeping a copy of x
    g = dy * weight
    dx = rstd * (g - jnp.mean(g, axis=-1, keepdims=True) - xhat * jnp.mean(g * xhat, axis=-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, jnp.sum(dy * xhat, axis=axes), None if bias is None else jnp.sum(dy, axis=axes)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


# -- GELU ----------------------------------------------------------------------------------------
_C = math.sqrt(2.0 / math.pi)


def _tanh_arg(x: jax.Array) -> jax.Array:
    return _C * (x + 0.044715 * x * x * x)


@jax.custom_vjp
def gelu(x: jax.Array) -> jax.Array:
    """GELU, tanh form: ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))) — ``jax.nn.gelu(x, approximate=True)``."""
    return 0.5 * x * (1 + jnp.tanh(_tanh_arg(x)))


def _gelu_fwd(x):
    return gelu(x), x


def _gelu_bwd(x, dy):
    """d/dx = ½ (1 + t) + ½ x (1 − t²) √(2/π) (1 + 3·0.044715 x²), t = tanh(√(2/π)(x + 0.044715 x³))."""
    t = jnp.tanh(_tanh_arg(x))
    return (dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _C * (1 + 3 * 0.044715 * x * x)),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)
