"""The KV cache of the JAX model: decode one token at a time without recomputing the past.

In a causal Transformer the keys and values of position j never change once computed, so a decoder keeps,
per layer, K and V of every slot seen so far, and a step for a new token computes only its own q, k, v:

    K ← [K; k_t],  V ← [V; v_t],  out_t = softmax(q_t Kᵀ / √d_k + m_t) V

The cache has a fixed number of slots S (jit-friendly: shapes never change while decoding); new keys are
written in place at slot ``pos``. Prompts of different lengths are left-padded so that every row writes its
next token into the same slot: row b's real tokens start at slot ``start[b]``, its token in slot s has
position s − start[b], and a query in slot i may attend key slot j iff

    j ≤ i  and  (j ≥ start[b]  or  j = i)

(the ``j = i`` clause only keeps padding queries' softmax finite; their outputs are never used).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from minigpt.config import GPTConfig
from minigpt.reference.kv_cache import attention_allowed


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    """Per layer (K, V), each (B, H_kv, S, d_k) (H_kv = n_kv_head: a shared head is cached once);
    ``start`` (B,) the first real slot of each row; ``pos`` the next
    slot to write (a scalar, the same for every row). A pytree: pass it into and out of jitted functions."""

    layers: tuple[tuple[jax.Array, jax.Array], ...]
    start: jax.Array
    pos: jax.Array

    @classmethod
    def init(cls, cfg: GPTConfig, batch: int, n_slots: int, dtype: Any = jnp.float32, start: Any = None) -> KVCache:
        """An empty cache of ``n_slots`` slots for ``batch`` rows (``start``: left padding per row, default 0)."""
        shape = (batch, cfg.kv_heads, n_slots, cfg.head_size)
        layers = tuple((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.n_layer))
        start = jnp.zeros(batch, jnp.int32) if start is None else jnp.asarray(start, jnp.int32)
        return cls(layers, start, jnp.zeros((), jnp.int32))

    @property
    def n_slots(self) -> int:
        return self.layers[0][0].shape[2]

    def slots(self, T: int) -> jax.Array:
        """The slots of the next T tokens, pos .. pos+T−1 (T,)."""
        return self.pos + jnp.arange(T, dtype=jnp.int32)

    def positions(self, T: int) -> jax.Array:
        """Positions (B, T) of the next T tokens: slot − start, 0 for padding slots."""
        return jnp.maximum(self.slots(T)[None, :] - self.start[:, None], 0)

    def mask(self, T: int, dtype: Any = jnp.float32) -> jax.Array:
        """Additive mask (B, 1, T, S) of the next T queries over all slots (0 allowed, −∞ not)."""
        allowed = attention_allowed(self.slots(T), jnp.arange(self.n_slots), self.start)  # (B, T, S)
        return jnp.where(allowed, 0.0, -jnp.inf).astype(dtype)[:, None]

    def advance(self, layers: list[tuple[jax.Array, jax.Array]], T: int) -> KVCache:
        """The cache after T tokens were written: the new per-layer arrays, pos moved on by T."""
        return dataclasses.replace(self, layers=tuple(layers), pos=self.pos + T)

    def reorder(self, rows: Any) -> KVCache:
        """Keep rows ``rows`` (in that order), e.g. the surviving beams of beam search."""
        rows = jnp.asarray(rows)
        layers = tuple((k[rows], v[rows]) for k, v in self.layers)
        return dataclasses.replace(self, layers=layers, start=self.start[rows])
