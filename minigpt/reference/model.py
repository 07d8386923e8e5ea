"""The whole GPT in NumPy: init, forward, and the causal language-model loss.

h⁰ = wte[x] + wpe[0..T-1]
hˡ = hˡ⁻¹ + MHA(LN₁(hˡ⁻¹));  hˡ = hˡ + MLP(LN₂(hˡ))        for l = 1..L
logits = LN_f(hᴸ) · wteᵀ                                     (lm head tied to wte)
L(θ) = −(1/N) Σ_i log P(x_{i+1} | x_≤i; θ)

With the Llama options (``GPTConfig``): no wpe (``pos="rope"``: q and k rotate by position instead),
RMSNorm for LN, SwiGLU for the MLP, n_kv_head key/value heads, and logits = LN_f(hᴸ) · W_lm_head if untied.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params, param_shapes, unflatten_params, validate_params
from minigpt.reference.functional import log_softmax, mlp, multi_head_attention, norm
from minigpt.reference.hooks import scoped, see
from minigpt.validation import check_targets, check_tokens


def init_params(cfg: GPTConfig, seed: int = 0, dtype: np.dtype | type = np.float32) -> Params:
    """GPT-2's initialisation: weights ~ N(0, 0.02), the residual projections (attn.c_proj,
    mlp.c_proj) ~ N(0, 0.02/√(2L)) so the residual stream's variance does not grow with depth;
    biases 0, LayerNorm γ=1, β=0 (RMSNorm's γ=1 too; c_gate and an untied lm_head ~ N(0, 0.02))."""
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith(".bias"):
            flat[name] = np.zeros(shape, dtype)
        elif ".ln_" in name or name.startswith("ln_f"):
            flat[name] = np.ones(shape, dtype)
        else:
            std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith("c_proj.weight") else 0.02
            flat[name] = (rng.standard_normal(shape) * std).astype(dtype)
    return unflatten_params(flat)


def block(
    x: np.ndarray, p: dict, cfg: GPTConfig, *, return_weights: bool = False, capture: MutableMapping | None = None
):
    """One pre-norm Transformer block: x + MHA(LN₁(x)), then + MLP(LN₂(·)). (B, T, C) → (B, T, C).

    ``capture`` (``minigpt.reference.hooks``): resid_pre, ln_1.out, attn.*, resid_mid, ln_2.out, mlp.*, resid_post.
    """
    x = see(capture, "resid_pre", x)
    a, weights = multi_head_attention(
        see(capture, "ln_1.out", norm(x, p["ln_1"], cfg.norm, cfg.layer_norm_eps)),
        p["attn"],
        cfg.n_head,
        n_kv_head=cfg.n_kv_head,
        positions=np.arange(x.shape[-2]) if cfg.pos == "rope" else None,
        rope_theta=cfg.rope_theta,
        return_weights=True,
        capture=scoped(capture, "attn."),
    )
    x = see(capture, "resid_mid", x + a)
    h = see(capture, "ln_2.out", norm(x, p["ln_2"], cfg.norm, cfg.layer_norm_eps))
    x = see(capture, "resid_post", x + mlp(h, p["mlp"], capture=scoped(capture, "mlp.")))
    return (x, weights) if return_weights else x


def embed(params: Params, idx: np.ndarray, cfg: GPTConfig) -> np.ndarray:
    """h⁰ = wte[idx] + wpe[0..T-1] (B, T, C); with RoPE just wte[idx] (positions enter the attention)."""
    x = params["wte"]["weight"][idx]  # (B, T, C)
    return x + params["wpe"]["weight"][: idx.shape[1]] if cfg.pos == "learned" else x


def lm_head(h: np.ndarray, params: Params, cfg: GPTConfig) -> np.ndarray:
    """logits = h · wteᵀ (tied), or h · W_lm_head with W stored (C, V)."""
    return h @ params["wte"]["weight"].T if cfg.tie_embeddings else h @ params["lm_head"]["weight"]  # (B, T, V)


def hidden_states(
    params: Params, idx: np.ndarray, cfg: GPTConfig, *, capture: MutableMapping | None = None
) -> np.ndarray:
    """The final normalised hidden states LN_f(hᴸ), (B, T, C); ``capture``: block i's names as h.{i}.*, and ln_f.out."""
    x = embed(params, idx, cfg)
    for i, p in enumerate(params["h"]):
        x = block(x, p, cfg, capture=scoped(capture, f"h.{i}."))
    return see(capture, "ln_f.out", norm(x, params["ln_f"], cfg.norm, cfg.layer_norm_eps))


def forward(params: Params, idx: np.ndarray, cfg: GPTConfig, *, capture: MutableMapping | None = None) -> np.ndarray:
    """Logits (B, T, V) for token ids idx (B, T); position t sees tokens 0..t only.

    ``capture``: a dict to fill with every named activation, in forward order (``minigpt.reference.hooks``).
    """
    check_tokens(idx, cfg)
    validate_params(params, cfg)
    h = hidden_states(params, np.asarray(idx), cfg, capture=capture)
    return see(capture, "logits", lm_head(h, params, cfg))  # (B, T, V)


def attention_weights(params: Params, idx: np.ndarray, cfg: GPTConfig) -> np.ndarray:
    """Per-layer, per-head attention weights A (L, B, H, T, T) for the sequence idx (B, T)."""
    check_tokens(idx, cfg)
    validate_params(params, cfg)
    idx = np.asarray(idx)
    x = embed(params, idx, cfg)
    maps = []
    for p in params["h"]:
        x, w = block(x, p, cfg, return_weights=True)
        maps.append(w)
    return np.stack(maps)


def cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """L = Σ_kept −log softmax(logits)[target] / max(N, 1): the mean over the N kept positions (targets ≠
    ignore_index), and 0 when none is kept (an SFT batch of prompts only), never 0/0 = NaN."""
    logp = log_softmax(logits, axis=-1)  # (B, T, V)
    keep = targets != ignore_index  # (B, T)
    safe = np.where(keep, targets, 0)
    nll = -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]  # (B, T)
    return np.sum(nll * keep) / np.maximum(np.sum(keep), 1).astype(logits.dtype)


def loss(params: Params, idx: np.ndarray, targets: np.ndarray, cfg: GPTConfig, ignore_index: int = -1) -> np.ndarray:
    """L(θ) = −(1/N) Σ log P(targets | idx; θ) over the N targets that are not ``ignore_index``.

    For language modelling, targets[:, t] = idx[:, t+1]: the loss is the causal log-likelihood.
    Returns a 0-d array in the parameters' dtype.
    """
    check_targets(targets, idx.shape, cfg, ignore_index)
    return cross_entropy(forward(params, idx, cfg), np.asarray(targets), ignore_index)
