"""The GPT's layers in Flax NNX, each the twin of a function in ``minigpt.reference.functional``.

``attention`` is the one place the attention formula lives on the JAX side; the attention layer, the block
and ``GPT`` call it. ``fast=True`` swaps attention (when it needs no mask, cache or weights), LayerNorm and
GELU for ``minigpt.model.kernels``: the same numbers with hand-written backward passes that keep less memory.
Llama's pieces (``rope``, ``RMSNorm``, ``swiglu``, ``repeat_kv``) are options of the same modules, chosen by
the config (``GPTConfig.pos``, ``norm``, ``mlp``, ``n_kv_head``), each the twin of ``minigpt.reference.llama``.
Run inside ``nnx.capture``, the layers record their activations by name (``sow``; ``minigpt.interpret``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from minigpt.config import GPTConfig
from minigpt.model import kernels


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array | None = None,
    *,
    dropout: nnx.Dropout | None = None,
    return_weights: bool = False,
):
    """Scaled dot-product attention: softmax(Q Kᵀ / √d_k + M) V.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v). The mask, broadcastable to (..., T_q, T_k),
    is additive M: 0 where query i may attend key j, −∞ where not (``causal_mask``); or boolean B, True where i
    may attend j (torch's convention): M = 0 where B, −∞ where not. The twin of
    ``minigpt.reference.scaled_dot_product_attention``. ``dropout`` (training only) drops weights before
    they meet V; ``return_weights`` also returns the weights (..., T_q, T_k).
    """
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None and mask.dtype == jnp.bool_:  # the dtype is static: the model's additive masks trace as before
        scores = jnp.where(mask, scores, -jnp.inf)
    elif mask is not None:
        scores = scores + mask.astype(scores.dtype)
    weights = jax.nn.softmax(scores, axis=-1)  # (..., T_q, T_k)
    out = (weights if dropout is None else dropout(weights)) @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


def capturing(module: nnx.Module) -> bool:
    """Whether ``module`` runs inside ``nnx.capture`` (how ``minigpt.interpret`` looks inside the model)."""
    return hasattr(module, "__captures__")  # what Module.sow itself tests


def sow(module: nnx.Module, name: str, value: jax.Array) -> jax.Array:
    """The JAX twin of ``minigpt.reference.hooks.see``: inside ``nnx.capture`` record ``value`` under ``name``
    (``nnx.Intermediate``) after adding the perturbation held under that name (``nnx.Perturbation``: zero unless
    given, which is how activation patching replaces it); outside a capture return ``value`` and keep nothing
    (``Module.sow`` alone would store it on the module at every call)."""
    if not capturing(module):
        return value
    value = module.perturb(name, value)
    module.sow(nnx.Intermediate, name, value)
    return value


def causal_mask(T: int, dtype=jnp.float32) -> jax.Array:
    """Additive mask M (T, T): 0 where key j ≤ query i, −∞ where j > i (the future)."""
    return jnp.where(jnp.tril(jnp.ones((T, T), dtype=bool)), 0.0, -jnp.inf).astype(dtype)


class Adapter(nnx.Variable):
    """A LoRA matrix (A or B) of a ``Linear``: not an ``nnx.Param``, so filters on Param leave the adapters out and
    ``nnx.state(model, Adapter)`` selects exactly them (``minigpt.model.lora``)."""


class Linear(nnx.Module):
    """y = x W + b, W: (in, out) ~ N(0, std²); with LoRA adapters attached (``minigpt.model.lora.attach``),
    y = x W + b + s · (x A) B, A (in, r), B (r, out): the twin of ``minigpt.reference.lora.lora_linear``."""

    def __init__(self, d_in: int, d_out: int, *, bias: bool, std: float, rngs: nnx.Rngs, dtype=jnp.float32):
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (d_in, d_out), dtype) * std)
        self.bias = nnx.Param(jnp.zeros((d_out,), dtype)) if bias else None
        self.lora_A: Adapter | None = None
        self.lora_B: Adapter | None = None
        self.lora_scale = 0.0

    def __call__(self, x: jax.Array) -> jax.Array:
        # The product is taken on the 2-D (B·T, in) view: the same numbers, but XLA:CPU compiles a 2-D dot
        # (and its gradient) to one large GEMM, ≈2.5× faster than the batched 3-D dot next to a fused GELU.
        x2 = x.reshape(-1, x.shape[-1])  # (B·T, in)
        y = x2 @ self.weight[...]  # (B·T, out)
        if self.lora_A is not None:
            y = y + self.lora_scale * ((x2 @ self.lora_A[...]) @ self.lora_B[...])  # x A first: (B·T, r)
        y = y.reshape(*x.shape[:-1], -1)  # (..., out)
        return y if self.bias is None else y + self.bias[...]


class LayerNorm(nnx.Module):
    """(x − μ) / √(σ² + ε) · γ + β over the last axis."""

    def __init__(self, dim: int, *, bias: bool, eps: float, dtype=jnp.float32, fast: bool = False):
        self.weight = nnx.Param(jnp.ones((dim,), dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype)) if bias else None
        self.eps = eps
        self.fast = fast

    def __call__(self, x: jax.Array) -> jax.Array:
        bias = None if self.bias is None else self.bias[...]
        if self.fast:
            return sow(self, "out", kernels.layer_norm(x, self.weight[...], bias, self.eps))
        mu = jnp.mean(x, axis=-1, keepdims=True)  # (..., 1)
        var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)  # (..., 1)
        y = (x - mu) * jax.lax.rsqrt(var + self.eps) * self.weight[...]
        return sow(self, "out", y if bias is None else y + bias)


class Embedding(nnx.Module):
    """A table of rows; row i is the vector of id i."""

    def __init__(self, num: int, dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (num, dim), dtype) * 0.02)

    def __call__(self, ids: jax.Array) -> jax.Array:
        # mode="fill": an out-of-range id inside jit gives NaN instead of JAX's silent clamp.
        return jnp.take(self.weight[...], ids, axis=0, mode="fill", fill_value=jnp.nan)


gelu = functools.partial(jax.nn.gelu, approximate=True)  # ½x(1 + tanh(√(2/π)(x + 0.044715x³))), GPT-2's GELU


class RMSNorm(nnx.Module):
    """x / √(mean(x²) + ε) · γ (+ β) over the last axis: LayerNorm without centring (Llama's norm)."""

    def __init__(self, dim: int, *, bias: bool, eps: float, dtype=jnp.float32):
        self.weight = nnx.Param(jnp.ones((dim,), dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype)) if bias else None
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        ms = jnp.mean(x * x, axis=-1, keepdims=True)  # (..., 1)
        y = x * jax.lax.rsqrt(ms + self.eps) * self.weight[...]
        return sow(self, "out", y if self.bias is None else y + self.bias[...])


def norm_layer(cfg: GPTConfig, *, dtype=jnp.float32, fast: bool = False) -> LayerNorm | RMSNorm:
    """The block's normalisation for ``cfg.norm`` (RMSNorm has no fast kernel: it is one fused reduction)."""
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.layer_norm_eps, dtype=dtype)
    return LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.layer_norm_eps, dtype=dtype, fast=fast)


def rope(x: jax.Array, positions: jax.Array, theta: float = 10000.0) -> jax.Array:
    """Rotary position embedding, half-split pairing (Llama's ``rotate_half``): with x = [x₁ | x₂],

    RoPE(x)_t = [x₁ cos φ_t − x₂ sin φ_t | x₂ cos φ_t + x₁ sin φ_t],  φ_{t,i} = t · θ^(−2i/d_k).

    x: (..., T, d_k); positions: integers broadcastable to (..., T). Twin of ``minigpt.reference.llama.rope``.
    """
    d_k = x.shape[-1]
    inv_freq = 1.0 / theta ** (jnp.arange(0, d_k, 2).astype(x.dtype) / d_k)  # (d_k/2,)
    phi = jnp.asarray(positions).astype(x.dtype)[..., None] * inv_freq  # (..., T, d_k/2)
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    x1, x2 = jnp.split(x, 2, axis=-1)  # 2 × (..., T, d_k/2)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # (..., T, d_k)


def swiglu(gate: jax.Array, up: jax.Array) -> jax.Array:
    """SwiGLU(g, u) = SiLU(g) ⊙ u, SiLU(g) = g · σ(g)."""
    return jax.nn.silu(gate) * up


def repeat_kv(x: jax.Array, n_rep: int) -> jax.Array:
    """(B, H_kv, T, d_k) → (B, H_kv·n_rep, T, d_k): query head h reads key/value head h // n_rep."""
    return x if n_rep == 1 else jnp.repeat(x, n_rep, axis=1)


class CausalSelfAttention(nnx.Module):
    """MultiHead(x) = Concat(head_1..head_H) Wᴼ with head_i = attention(x W_i^Q, x W_i^K, x W_i^V, M).

    Without a cache, M is the causal mask over x. With ``cache=(K, V)`` — this layer's keys and values, each
    (B, H_kv, S, d_k) — the new keys and values are written into slots ``pos .. pos+T−1`` and the queries attend
    all S slots under ``mask`` (B, 1, T, S) (``KVCache.mask``); the call then returns (y, new cache).
    Llama's options: H_kv = n_kv_head < H key/value heads, each shared by H / H_kv query heads (``repeat_kv``,
    after the cache, which stores H_kv heads); with pos="rope", q and k turn by ``positions`` ((T,) or (B, T),
    ``KVCache.positions`` on the cached path).
    """

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        C = cfg.n_embd
        qkv = (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_size
        self.c_attn = Linear(C, qkv, bias=cfg.attn_bias, std=0.02, rngs=rngs, dtype=dtype)
        self.c_proj = Linear(C, C, bias=cfg.bias, std=0.02 / math.sqrt(2 * cfg.n_layer), rngs=rngs, dtype=dtype)
        self.attn_dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.resid_dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.n_head, self.n_kv_head = cfg.n_head, cfg.kv_heads
        self.rope_theta = cfg.rope_theta if cfg.pos == "rope" else None
        self.fast = fast

    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        cache: tuple[jax.Array, jax.Array] | None = None,
        pos: jax.Array | int = 0,
        positions: jax.Array | None = None,
        return_weights: bool = False,
    ):
        B, T, C = x.shape
        H, H_kv, d_k = self.n_head, self.n_kv_head, C // self.n_head
        q, k, v = jnp.split(self.c_attn(x), [H * d_k, (H + H_kv) * d_k], axis=-1)  # (B, T, H·d_k), 2 × (B, T, H_kv·d_k)
        q = q.reshape(B, T, H, d_k).transpose(0, 2, 1, 3)  # (B, H, T, d_k)
        k, v = (t.reshape(B, T, H_kv, d_k).transpose(0, 2, 1, 3) for t in (k, v))  # (B, H_kv, T, d_k)
        if self.rope_theta is not None:
            at = (jnp.arange(T) if positions is None else jnp.asarray(positions))[..., None, :]  # (B or 1, 1, T)
            q, k = rope(q, at, self.rope_theta), rope(k, at, self.rope_theta)
        q, k, v = sow(self, "q", q), sow(self, "k", k), sow(self, "v", v)
        if cache is not None:
            if return_weights:
                raise ValueError("attention weights are not returned on the cached path; call without cache=")
            zero = jnp.zeros((), jnp.int32)
            at = (zero, zero, jnp.asarray(pos, jnp.int32), zero)
            k, v = (jax.lax.dynamic_update_slice(c, t.astype(c.dtype), at) for c, t in zip(cache, (k, v), strict=True))
            cache = (k, v)  # (B, H_kv, S, d_k): every slot so far, stale ones hidden by the mask
        k, v = repeat_kv(k, H // H_kv), repeat_kv(v, H // H_kv)  # (B, H, T or S, d_k)
        dropout_on = self.attn_dropout.rate > 0 and not self.attn_dropout.deterministic
        plain = mask is not None or cache is not None or return_weights or dropout_on or capturing(self)
        if self.fast and not plain:
            y, weights = kernels.causal_attention(q, k, v), None  # the kernel never forms the weights
        else:
            mask = causal_mask(T, x.dtype) if mask is None else mask
            y, weights = attention(q, k, v, mask, dropout=self.attn_dropout, return_weights=True)  # (B, H, T, d_k)
            sow(self, "weights", weights)  # recorded only: y is already computed from them
        y = sow(self, "z", y)  # each head's output (B, H, T, d_k)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # Concat(heads)
        y = sow(self, "out", self.resid_dropout(self.c_proj(y)))  # (B, T, C)
        if return_weights:
            return y, weights
        return y if cache is None else (y, cache)


class MLP(nnx.Module):
    """GELU(x W_fc + b_fc) W_proj + b_proj, C → 4C → C; with mlp="swiglu" (Llama),
    (SiLU(x W_gate) ⊙ x W_fc) W_proj, C → F → C."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        C, F = cfg.n_embd, cfg.mlp_width
        if cfg.mlp == "swiglu":
            self.c_gate = Linear(C, F, bias=cfg.bias, std=0.02, rngs=rngs, dtype=dtype)
        else:
            self.c_gate = None
        self.c_fc = Linear(C, F, bias=cfg.bias, std=0.02, rngs=rngs, dtype=dtype)
        self.c_proj = Linear(F, C, bias=cfg.bias, std=0.02 / math.sqrt(2 * cfg.n_layer), rngs=rngs, dtype=dtype)
        self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.fast = fast

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.c_gate is not None:
            h = swiglu(self.c_gate(x), self.c_fc(x))  # (B, T, F)
        else:
            h = (kernels.gelu if self.fast else gelu)(self.c_fc(x))  # (B, T, F)
        return sow(self, "out", self.dropout(self.c_proj(sow(self, "act", h))))  # (B, T, C)


class Block(nnx.Module):
    """x + MHA(LN₁(x)), then + MLP(LN₂(·)); ``mask``/``cache``/``pos``/``positions``/``return_weights`` go to the
    attention, whose extra output (new cache or weights) the block returns beside x."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        self.ln_1 = norm_layer(cfg, dtype=dtype, fast=fast)
        self.attn = CausalSelfAttention(cfg, rngs=rngs, dtype=dtype, fast=fast)
        self.ln_2 = norm_layer(cfg, dtype=dtype, fast=fast)
        self.mlp = MLP(cfg, rngs=rngs, dtype=dtype, fast=fast)

    def __call__(self, x: jax.Array, **attn_options):
        x = sow(self, "resid_pre", x)
        a = self.attn(self.ln_1(x), **attn_options)
        a, extra = a if isinstance(a, tuple) else (a, None)
        x = sow(self, "resid_mid", x + a)  # (B, T, C)
        x = sow(self, "resid_post", x + self.mlp(self.ln_2(x)))
        return x if extra is None else (x, extra)
