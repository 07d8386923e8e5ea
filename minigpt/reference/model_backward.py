"""The whole GPT's gradient by hand: ∂L/∂θ for every tensor of the parameter layout.

Forward (caching what backward needs), then the same steps in reverse::

    h⁰ = wte[x] + wpe[0..T-1]                      ← embedding scatter-adds, pos. grad summed over batch
    hˡ = hˡ⁻¹ + MHA(LN₁(hˡ⁻¹)); hˡ += MLP(LN₂(hˡ))  ← residual: the gradient flows through both paths
    logits = LN_f(hᴸ) wteᵀ                         ← tied head: wte gets a second gradient here
    L = −(1/N) Σ_kept log softmax(logits)[target]  ← ∂L/∂logits = (softmax − onehot) / N

With the Llama options: no wpe (RoPE's rotations are undone inside the attention's backward), RMSNorm,
SwiGLU, grouped key/value heads, and an untied head W (C, V): ∂L/∂W = Σ_rows hᵀ dlogits.

``loss_and_grads(params, idx, targets, cfg)`` returns ``(loss, grads)`` with ``grads`` in exactly the
layout of ``params`` (``minigpt.params``), ready for ``minigpt.reference.optim``.
"""

from __future__ import annotations

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params, validate_params
from minigpt.reference.functional import softmax
from minigpt.reference.functional_backward import (
    linear_backward,
    linear_forward,
    mlp_backward,
    mlp_forward,
    multi_head_attention_backward,
    multi_head_attention_forward,
    norm_backward,
    norm_forward,
    residual_backward,
    residual_forward,
)
from minigpt.reference.model import cross_entropy
from minigpt.validation import check_targets, check_tokens


def embedding_forward(ids: np.ndarray, weight: np.ndarray):
    """e = W[ids]: row lookup, (...,) → (..., C); cache = (ids, W)."""
    return weight[ids], (ids, weight)


def embedding_backward(dout: np.ndarray, cache) -> np.ndarray:
    """∂L/∂W_v = Σ_{positions p with ids_p = v} dout_p: a scatter-add.

    A token that occurs several times collects the sum of all its positions' gradients
    (``np.add.at`` adds repeated indices; ``dW[ids] += dout`` would keep only one of them).
    Rows of tokens that do not occur get zero.
    """
    ids, weight = cache
    dw = np.zeros_like(weight)
    np.add.at(dw, ids.reshape(-1), dout.reshape(-1, weight.shape[-1]))
    return dw


def tied_lm_head_forward(h: np.ndarray, wte: np.ndarray):
    """logits = h wteᵀ, (B, T, C) → (B, T, V): the output layer reuses the token embedding matrix."""
    return h @ wte.T, (h, wte)


def tied_lm_head_backward(dlogits: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂h = dlogits wte,  ∂L/∂wte = Σ_rows dlogitsᵀ h  (V, C). Returns (dh, dwte_head)."""
    h, wte = cache
    dh = dlogits @ wte  # (B, T, C)
    dwte = np.einsum("rv,rc->vc", dlogits.reshape(-1, wte.shape[0]), h.reshape(-1, h.shape[-1]))  # (V, C)
    return dh, dwte


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -1):
    """L = −(1/N) Σ_{p kept} log softmax(logits_p)[t_p], N = #kept (targets ≠ ignore_index)."""
    return cross_entropy(logits, targets, ignore_index), (logits, targets, ignore_index)


def cross_entropy_backward(dloss: np.ndarray | float, cache) -> np.ndarray:
    """∂L/∂logits_p = (softmax(logits_p) − onehot(t_p)) · keep_p / max(N, 1),  times the upstream dloss.

    Ignored positions get exactly zero gradient (all of them when N = 0). Returns dlogits, same shape as logits.
    """
    logits, targets, ignore_index = cache
    keep = targets != ignore_index  # (B, T)
    n = max(int(np.sum(keep)), 1)
    onehot = np.arange(logits.shape[-1]) == np.where(keep, targets, 0)[..., None]  # (B, T, V)
    return (softmax(logits, axis=-1) - onehot) * keep[..., None] * (float(dloss) / n)


def block_forward(x: np.ndarray, p: dict, cfg: GPTConfig):
    """x + MHA(LN₁(x)), then + MLP(LN₂(·)) — as ``reference.block``, caching every step."""
    eps = cfg.layer_norm_eps
    a, ln_1 = norm_forward(x, p["ln_1"], cfg.norm, eps)
    rope = {"positions": np.arange(x.shape[-2]), "rope_theta": cfg.rope_theta} if cfg.pos == "rope" else {}
    a, attn = multi_head_attention_forward(a, p["attn"], cfg.n_head, n_kv_head=cfg.n_kv_head, **rope)
    x, _ = residual_forward(x, a)
    m, ln_2 = norm_forward(x, p["ln_2"], cfg.norm, eps)
    m, mlp = mlp_forward(m, p["mlp"])
    x, _ = residual_forward(x, m)
    return x, (ln_1, attn, ln_2, mlp)


def block_backward(dy: np.ndarray, cache) -> tuple[np.ndarray, dict]:
    """Reverse of ``block_forward``. At each residual the gradient splits: the skip path carries dy
    unchanged, the branch's backward returns its own ∂L/∂x, and the two are summed.

    Returns (dx, block grads {"ln_1", "attn", "ln_2", "mlp"}).
    """
    ln_1, attn, ln_2, mlp = cache
    dx, dm = residual_backward(dy, None)
    dm, g_mlp = mlp_backward(dm, mlp)
    dm, g_ln_2 = norm_backward(dm, ln_2)
    dx = dx + dm
    dx, da = residual_backward(dx, None)
    da, g_attn = multi_head_attention_backward(da, attn)
    da, g_ln_1 = norm_backward(da, ln_1)
    dx = dx + da
    return dx, {"ln_1": g_ln_1, "attn": g_attn, "ln_2": g_ln_2, "mlp": g_mlp}


def model_forward(params: Params, idx: np.ndarray, cfg: GPTConfig):
    """Logits (B, T, V) exactly as ``reference.forward``, plus the cache for ``model_backward``."""
    check_tokens(idx, cfg)
    validate_params(params, cfg)
    idx = np.asarray(idx)
    T = idx.shape[1]
    x, tok_cache = embedding_forward(idx, params["wte"]["weight"])  # (B, T, C)
    pos_cache = None
    if cfg.pos == "learned":
        pos, pos_cache = embedding_forward(np.arange(T), params["wpe"]["weight"])  # (T, C)
        x = x + pos  # (B, T, C)
    block_caches = []
    for p in params["h"]:
        x, c = block_forward(x, p, cfg)
        block_caches.append(c)
    h, ln_f = norm_forward(x, params["ln_f"], cfg.norm, cfg.layer_norm_eps)
    if cfg.tie_embeddings:
        logits, head = tied_lm_head_forward(h, params["wte"]["weight"])
    else:
        logits, head = linear_forward(h, params["lm_head"]["weight"])
    return logits, (tok_cache, pos_cache, block_caches, ln_f, head)


def model_backward(dlogits: np.ndarray, cache) -> Params:
    """∂L/∂θ for every parameter, given ∂L/∂logits; same layout as ``params``.

    wte receives two contributions, added: the lm head's (dlogitsᵀ h) and the embedding's scatter-add.
    wpe[:T] is broadcast over the batch in the forward, so its gradient is summed over the batch;
    rows t ≥ T of wpe were not used and get zero.
    """
    tok_cache, pos_cache, block_caches, ln_f, head = cache
    tied = len(head) == 2  # tied_lm_head_forward caches (h, wte); linear_forward (h, W, has_bias)
    if tied:
        dh, dwte_head = tied_lm_head_backward(dlogits, head)
    else:
        dh, dw_head, _ = linear_backward(dlogits, head)
    dx, g_ln_f = norm_backward(dh, ln_f)
    block_grads = []
    for c in reversed(block_caches):
        dx, g = block_backward(dx, c)
        block_grads.append(g)
    dwte = embedding_backward(dx, tok_cache)
    grads: Params = {"wte": {"weight": dwte + dwte_head if tied else dwte}}
    if pos_cache is not None:
        grads["wpe"] = {"weight": embedding_backward(dx.sum(axis=0), pos_cache)}  # (T_max, C)
    grads |= {"h": block_grads[::-1], "ln_f": g_ln_f}
    return grads if tied else grads | {"lm_head": {"weight": dw_head}}


def loss_and_grads(
    params: Params, idx: np.ndarray, targets: np.ndarray, cfg: GPTConfig, ignore_index: int = -1
) -> tuple[np.ndarray, Params]:
    """(L, ∂L/∂θ): the loss of ``reference.loss`` and its gradient in the params layout, by hand.

    idx, targets: integer (B, T); targets equal to ``ignore_index`` do not count. The loss is a 0-d
    array in the parameters' dtype; every gradient has the dtype of its parameter.
    """
    check_targets(targets, np.shape(idx), cfg, ignore_index)
    logits, cache = model_forward(params, idx, cfg)
    loss, ce = cross_entropy_forward(logits, np.asarray(targets), ignore_index)
    return loss, model_backward(cross_entropy_backward(1.0, ce), cache)


def validate_grads(grads: Params, cfg: GPTConfig) -> None:
    """Raise ``ValueError`` naming the first missing, unexpected or misshaped gradient.

    A gradient dict must have exactly the layout of the parameters (``minigpt.params``).
    """
    try:
        validate_params(grads, cfg)
    except ValueError as err:
        raise ValueError(f"gradient dict does not match the parameter layout: {err}") from err
