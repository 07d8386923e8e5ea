"""The NumPy KV cache: the reference decoder's twin of ``minigpt.model.KVCache``.

A step for a new token computes only its own q, k, v and attends the cached keys and values of every earlier
slot (``K ← [K; k_t]``, O(t) instead of the O(t²) of re-running the sequence). Here the arrays grow by
concatenation and the network is built from ``minigpt.reference.functional`` — the same attention the
reference model uses. Left padding, slots and positions follow ``minigpt.model.cache`` (its module docstring),
with one mask rule for both, ``attention_allowed`` below (the JAX cache imports it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.reference.functional import linear, merge_heads, mlp, norm, project_qkv, scaled_dot_product_attention
from minigpt.reference.llama import repeat_kv
from minigpt.reference.model import lm_head


def attention_allowed(query_slots: Any, key_slots: Any, start: Any) -> Any:
    """Boolean (B, T_q, T_k): may the query in slot i attend the key in slot j for row b?

    j ≤ i and (j ≥ start[b] or j = i), as ``minigpt.model.cache`` explains; NumPy or JAX arrays alike.
    """
    i = query_slots[None, :, None]  # (1, T_q, 1)
    j = key_slots[None, None, :]  # (1, 1, T_k)
    s = start[:, None, None]  # (B, 1, 1)
    return (j <= i) & ((j >= s) | (j == i))


class ReferenceKVCache:
    """Per layer, keys and values of every slot so far, K, V: (B, H_kv, T_seen, d_k), grown by concatenation.

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

    Same network as ``minigpt.reference.model.forward`` (pre-norm blocks, any of the config's options), except
    that attention reads the cached keys/values of earlier slots. The cache is extended in place.
    """
    B, T = idx.shape
    slots = cache.length + np.arange(T)  # (T,)
    positions = np.maximum(slots[None, :] - cache.start[:, None], 0)  # (B, T); padding slots use position 0
    x = params["wte"]["weight"][idx]  # (B, T, C)
    if cfg.pos == "learned":
        x = x + params["wpe"]["weight"][positions]
    allowed = attention_allowed(slots, np.arange(cache.length + T), cache.start)  # (B, T, T_all)
    mask = np.where(allowed, 0.0, -np.inf).astype(x.dtype)[:, None]  # (B, 1, T, T_all) additive, all heads
    eps, rope_positions = cfg.layer_norm_eps, positions if cfg.pos == "rope" else None
    for layer, p in enumerate(params["h"]):
        a = norm(x, p["ln_1"], cfg.norm, eps)
        q, k, v = project_qkv(a, p["attn"], cfg.n_head, cfg.n_kv_head, rope_positions, cfg.rope_theta)
        k_all, v_all = cache.append(layer, k, v)  # (B, H_kv, T_all, d_k): the cache keeps H_kv heads
        n_rep = cfg.n_head // cfg.kv_heads
        out = scaled_dot_product_attention(q, repeat_kv(k_all, n_rep), repeat_kv(v_all, n_rep), mask)  # (B, H, T, d_k)
        x = x + linear(merge_heads(out), p["attn"]["c_proj"]["weight"], p["attn"]["c_proj"].get("bias"))
        x = x + mlp(norm(x, p["ln_2"], cfg.norm, eps), p["mlp"])
    return lm_head(norm(x, params["ln_f"], cfg.norm, eps), params, cfg)  # (B, T, V)
