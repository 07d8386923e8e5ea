"""The KV cache: decode one token at a time without recomputing the past.

In a causal Transformer the keys and values of position j never change once computed (position j
only sees tokens ≤ j). So a decoder keeps, per layer, K and V of every position seen so far, and a
step for the new token t computes only its own q_t, k_t, v_t:

    K ← [K; k_t],  V ← [V; v_t],  out_t = softmax(q_t Kᵀ / √d_k + m_t) V

which costs O(t) instead of the O(t²) of re-running the whole sequence.

Batches of prompts of different lengths are **left-padded** to a common length P, so that every row
writes its next token into the same cache slot. Row b's real tokens start at slot ``start[b]``; its
token in slot s has position s − start[b] (so positions match an unpadded run), and a query in slot i
may attend key slot j iff

    j ≤ i  and  (j ≥ start[b]  or  j = i)

The ``j = i`` clause only matters for padding queries (it keeps their softmax finite); their outputs
are never used and, being before ``start[b]``, they are never attended to by real tokens.

Two implementations of the same arithmetic:

* ``ReferenceKVCache`` + ``forward_cached_numpy`` — plain NumPy, arrays grow by concatenation,
  built from ``minigpt.reference.functional`` (the same attention the reference model uses);
* ``init_cache_jax`` + ``forward_cached_jax`` — a pure JAX function over reference-layout params with
  a fixed-size, preallocated cache written in place by ``lax.dynamic_update_slice`` (jit-friendly:
  shapes never change during decoding).
"""

from __future__ import annotations

import math

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.reference.functional import (
    layer_norm,
    linear,
    merge_heads,
    mlp,
    scaled_dot_product_attention,
    split_heads,
)


def attention_allowed(query_slots, key_slots, start, xp=np):
    """Boolean (B, T_q, T_k): may the query in slot i attend the key in slot j for row b (see module doc)."""
    i = query_slots[None, :, None]  # (1, T_q, 1)
    j = key_slots[None, None, :]  # (1, 1, T_k)
    s = start[:, None, None]  # (B, 1, 1)
    return (j <= i) & ((j >= s) | (j == i))


class ReferenceKVCache:
    """Per layer, keys and values of every slot so far, K, V: (B, H, T_seen, d_k), grown by concatenation.

    ``start`` (B,) is the first real slot of each row (left padding before it).
    """

    def __init__(self, cfg: GPTConfig, start: np.ndarray):
        self.cfg = cfg
        self.start = np.asarray(start, dtype=np.int64)
        self.k: list[np.ndarray | None] = [None] * cfg.n_layer
        self.v: list[np.ndarray | None] = [None] * cfg.n_layer

    @property
    def length(self) -> int:
        """Number of slots already cached (the next token goes to this slot)."""
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """K ← [K; k], V ← [V; v] along the time axis; returns the full K, V of this layer."""
        if self.k[layer] is not None:
            k = np.concatenate([self.k[layer], k], axis=2)  # (B, H, T_seen + T_new, d_k)
            v = np.concatenate([self.v[layer], v], axis=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def reorder(self, rows: np.ndarray) -> None:
        """Keep rows ``rows`` (in that order), e.g. the surviving beams of beam search."""
        rows = np.asarray(rows)
        self.start = self.start[rows]
        self.k = [None if k is None else k[rows] for k in self.k]
        self.v = [None if v is None else v[rows] for v in self.v]


def forward_cached_numpy(params: Params, cfg: GPTConfig, idx: np.ndarray, cache: ReferenceKVCache) -> np.ndarray:
    """Logits (B, T, V) for new tokens idx (B, T) placed in slots cache.length … cache.length + T − 1.

    Same network as ``minigpt.reference.model.forward`` (pre-LN blocks, tied lm head), except that
    attention reads the cached keys/values of earlier slots. The cache is extended in place.
    """
    B, T = idx.shape
    slots = cache.length + np.arange(T)  # (T,)
    positions = np.maximum(slots[None, :] - cache.start[:, None], 0)  # (B, T); padding slots use position 0
    x = params["wte"]["weight"][idx] + params["wpe"]["weight"][positions]  # (B, T, C)
    allowed = attention_allowed(slots, np.arange(cache.length + T), cache.start)  # (B, T, T_all)
    mask = np.where(allowed, 0.0, -np.inf).astype(x.dtype)[:, None]  # (B, 1, T, T_all) additive, all heads
    eps = cfg.layer_norm_eps
    for layer, p in enumerate(params["h"]):
        a = layer_norm(x, p["ln_1"]["weight"], p["ln_1"].get("bias"), eps)
        qkv = linear(a, p["attn"]["c_attn"]["weight"], p["attn"]["c_attn"].get("bias"))  # (B, T, 3C)
        q, k, v = (split_heads(t, cfg.n_head) for t in np.split(qkv, 3, axis=-1))  # 3 × (B, H, T, d_k)
        k_all, v_all = cache.append(layer, k, v)  # (B, H, T_all, d_k)
        out = scaled_dot_product_attention(q, k_all, v_all, mask)  # (B, H, T, d_k)
        x = x + linear(merge_heads(out), p["attn"]["c_proj"]["weight"], p["attn"]["c_proj"].get("bias"))
        x = x + mlp(layer_norm(x, p["ln_2"]["weight"], p["ln_2"].get("bias"), eps), p["mlp"])
    x = layer_norm(x, params["ln_f"]["weight"], params["ln_f"].get("bias"), eps)
    return x @ params["wte"]["weight"].T  # (B, T, V)


# --------------------------------------------------------------------------------------------------
# JAX: fixed-size cache, pure functions


def init_cache_jax(cfg: GPTConfig, batch: int, n_slots: int, dtype) -> list[tuple]:
    """Per layer (K, V), each (B, H, n_slots, d_k) of zeros; slots are filled as decoding advances."""
    import jax.numpy as jnp

    shape = (batch, cfg.n_head, n_slots, cfg.head_size)
    return [(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.n_layer)]


def _layer_norm_jax(x, p, eps):
    import jax
    import jax.numpy as jnp

    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    y = (x - mu) * jax.lax.rsqrt(var + eps) * p["weight"]
    return y + p["bias"] if "bias" in p else y


def _linear_jax(x, p):
    y = x @ p["weight"]
    return y + p["bias"] if "bias" in p else y


def forward_cached_jax(params: Params, cfg: GPTConfig, idx, slot0, start, cache: list[tuple]):
    """Pure-function twin of ``forward_cached_numpy`` over a fixed-size cache.

    idx (B, T) int; slot0: scalar, the slot of idx[:, 0]; start (B,); cache from ``init_cache_jax``
    with n_slots ≥ slot0 + T. Returns (logits (B, T, V), new cache). Keys in slots ≥ slot0 + T hold
    stale values; the mask (j ≤ i) hides them.
    """
    import jax
    import jax.numpy as jnp

    B, T = idx.shape
    H, d_k = cfg.n_head, cfg.head_size
    n_slots = cache[0][0].shape[2]
    slot0 = jnp.asarray(slot0, jnp.int32)  # one index dtype for dynamic_update_slice, with or without x64
    zero = jnp.int32(0)
    slots = slot0 + jnp.arange(T, dtype=jnp.int32)  # (T,)
    positions = jnp.maximum(slots[None, :] - start[:, None], 0)  # (B, T)
    x = jnp.take(params["wte"]["weight"], idx, axis=0) + jnp.take(params["wpe"]["weight"], positions, axis=0)
    allowed = attention_allowed(slots, jnp.arange(n_slots), start, xp=jnp)[:, None]  # (B, 1, T, n_slots)
    eps = cfg.layer_norm_eps
    new_cache = []
    for p, (k_cache, v_cache) in zip(params["h"], cache, strict=True):
        a = _layer_norm_jax(x, p["ln_1"], eps)
        q, k, v = jnp.split(_linear_jax(a, p["attn"]["c_attn"]), 3, axis=-1)  # 3 × (B, T, C)
        q, k, v = (t.reshape(B, T, H, d_k).transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, H, T, d_k)
        k_cache = jax.lax.dynamic_update_slice(k_cache, k, (zero, zero, slot0, zero))  # (B, H, n_slots, d_k)
        v_cache = jax.lax.dynamic_update_slice(v_cache, v, (zero, zero, slot0, zero))
        new_cache.append((k_cache, v_cache))
        scores = q @ k_cache.swapaxes(-1, -2) / math.sqrt(d_k)  # (B, H, T, n_slots)
        weights = jax.nn.softmax(jnp.where(allowed, scores, -jnp.inf), axis=-1)
        out = (weights @ v_cache).transpose(0, 2, 1, 3).reshape(B, T, H * d_k)  # Concat(heads)
        x = x + _linear_jax(out, p["attn"]["c_proj"])
        h = jax.nn.gelu(_linear_jax(_layer_norm_jax(x, p["ln_2"], eps), p["mlp"]["c_fc"]), approximate=True)
        x = x + _linear_jax(h, p["mlp"]["c_proj"])
    x = _layer_norm_jax(x, params["ln_f"], eps)
    return x @ params["wte"]["weight"].T, new_cache  # (B, T, V)
