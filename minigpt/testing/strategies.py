"""Public hypothesis strategies: small GPT configs, token batches, attention inputs.

Sizes stay small on purpose: every example runs both implementations, often in float64.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from minigpt.config import GPTConfig


@st.composite
def configs(
    draw: st.DrawFn,
    *,
    max_layers: int = 3,
    max_heads: int = 4,
    max_head_size: int = 8,
    max_vocab: int = 50,
    max_block: int = 12,
    bias: bool | None = None,
    llama: bool = False,
) -> GPTConfig:
    """A valid ``GPTConfig``: 1..max_layers layers, 1..max_heads heads, n_embd = heads × head size.

    ``llama=True`` also draws the Llama options (``llama_options``): RoPE or learned positions, RMSNorm or
    LayerNorm, SwiGLU or GELU, n_kv_head (often < n_head), tied or not, a c_attn-only bias, the MLP width.
    """
    n_head = draw(st.integers(1, max_heads))
    head_size = draw(st.integers(1, max_head_size))
    cfg = GPTConfig(
        vocab_size=draw(st.integers(2, max_vocab)),
        block_size=draw(st.integers(1, max_block)),
        n_layer=draw(st.integers(1, max_layers)),
        n_head=n_head,
        n_embd=n_head * head_size,
        bias=draw(st.booleans()) if bias is None else bias,
    )
    return draw(llama_options(cfg)) if llama else cfg


@st.composite
def llama_options(draw: st.DrawFn, cfg: GPTConfig) -> GPTConfig:
    """``cfg`` with Llama's options drawn; n_kv_head is a divisor of n_head (a proper one when there is one, half
    the time), and an odd head size is made even when RoPE is drawn (RoPE turns pairs of channels)."""
    pos = draw(st.sampled_from(["rope", "learned"]))
    n_embd = cfg.n_embd + cfg.n_head if pos == "rope" and cfg.head_size % 2 else cfg.n_embd
    divisors = [d for d in range(1, cfg.n_head) if cfg.n_head % d == 0]
    grouped = bool(divisors) and draw(st.booleans())
    return cfg.replace(
        n_embd=n_embd,
        pos=pos,
        rope_theta=draw(st.sampled_from([10000.0, 100.0, 500000.0])),
        norm=draw(st.sampled_from(["rmsnorm", "layernorm"])),
        mlp=draw(st.sampled_from(["swiglu", "gelu"])),
        mlp_hidden=draw(st.one_of(st.none(), st.integers(1, 12))),
        n_kv_head=draw(st.sampled_from(divisors)) if grouped else draw(st.sampled_from([None, cfg.n_head])),
        tie_embeddings=draw(st.booleans()),
        qkv_bias=draw(st.sampled_from([None, True, False])),
    )


@st.composite
def token_batches(draw: st.DrawFn, cfg: GPTConfig, *, max_batch: int = 3, min_len: int = 1) -> np.ndarray:
    """Integer ids (B, T) with 1 ≤ B ≤ max_batch and min_len ≤ T ≤ block_size, all in [0, vocab_size)."""
    B = draw(st.integers(1, max_batch))
    T = draw(st.integers(min(min_len, cfg.block_size), cfg.block_size))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T)).astype(np.int64)


@st.composite
def config_and_tokens(draw: st.DrawFn, **config_kwargs) -> tuple[GPTConfig, np.ndarray]:
    """A config together with a token batch that fits it."""
    cfg = draw(configs(**config_kwargs))
    return cfg, draw(token_batches(cfg))


@st.composite
def attention_inputs(
    draw: st.DrawFn,
    *,
    max_batch: int = 3,
    max_len: int = 10,
    max_dim: int = 8,
    equal_dims: bool = False,
    dtype=np.float64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, k, v) with shapes (B, T, d_k), (B, T, d_k), (B, T, d_v), normal entries (d_v = d_k if equal_dims)."""
    B, T = draw(st.integers(1, max_batch)), draw(st.integers(1, max_len))
    d_k = draw(st.integers(1, max_dim))
    d_v = d_k if equal_dims else draw(st.integers(1, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    q, k = (rng.standard_normal((B, T, d_k)) * scale for _ in range(2))
    v = rng.standard_normal((B, T, d_v))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)
