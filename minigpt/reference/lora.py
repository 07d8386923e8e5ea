"""LoRA in NumPy: the adapted linear layer, its backward by hand, merging, and the whole model with adapters.

    y = x W + b + s · (x A) B,    s = α / r,   x (…, in), W (in, out), A (in, r), B (r, out)

The base W and b are frozen: only A and B are trained, so the backward returns dA and dB (and dx, which the
layers below need); dW and db only when asked. The adapter layout is ``minigpt.adapters``.

For the whole model, ``loss_and_adapter_grads`` runs the model on the merged weights W' = W + s A B and maps
each adapted layer's gradient ∂L/∂W' to its adapters by the chain rule (``merged_to_adapter_grads``)::

    ∂L/∂A = s · ∂L/∂W' Bᵀ   (in, r),      ∂L/∂B = s · Aᵀ ∂L/∂W'   (r, out)

— the same numbers as ``lora_linear_backward`` on the unmerged layer, since ∂L/∂W' = Xᵀ dY (tested).
"""

from __future__ import annotations

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, unflatten_params
from minigpt.reference.model import forward
from minigpt.reference.model_backward import loss_and_grads


def lora_linear(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None, A: np.ndarray, B: np.ndarray, scale: float
) -> np.ndarray:
    """y = x W + b + s · (x A) B: x (…, in), W (in, out), b (out,) or None, A (in, r), B (r, out) → (…, out)."""
    y = x @ W + scale * ((x @ A) @ B)  # (…, out); x A first: r ≪ in, out keeps it cheap
    return y if b is None else y + b


def lora_linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, A: np.ndarray, B: np.ndarray, scale: float):
    """``lora_linear`` and the cache for ``lora_linear_backward``: (x, W, has_bias, A, B, s, x A)."""
    xa = x @ A  # (…, r)
    y = x @ W + scale * (xa @ B)
    return (y if b is None else y + b), (x, W, b is not None, A, B, scale, xa)


def lora_linear_backward(dy: np.ndarray, cache, *, base_grads: bool = False):
    """With rows r (leading axes flattened), u = x A:

    ∂L/∂x = dy Wᵀ + s · (dy Bᵀ) Aᵀ,   ∂L/∂A = s · Xᵀ (dY Bᵀ),   ∂L/∂B = s · Uᵀ dY,
    and for a frozen base nothing else; with ``base_grads``: ∂L/∂W = Xᵀ dY, ∂L/∂b = Σ_r dy_r.

    Returns (dx, dA, dB), or (dx, dA, dB, dW, db) with ``base_grads`` (db None without bias).
    """
    x, W, has_bias, A, B, scale, xa = cache
    dyb = dy @ B.T  # (…, r)
    dx = dy @ W.T + scale * (dyb @ A.T)  # (…, in)
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])  # (R, in), (R, out)
    dA = scale * np.einsum("ri,rk->ik", x2, dyb.reshape(-1, B.shape[0]))  # (in, r)
    dB = scale * np.einsum("rk,ro->ko", xa.reshape(-1, A.shape[1]), dy2)  # (r, out)
    if not base_grads:
        return dx, dA, dB
    return dx, dA, dB, np.einsum("ri,ro->io", x2, dy2), (dy2.sum(axis=0) if has_bias else None)


def merge(W: np.ndarray, A: np.ndarray, B: np.ndarray, scale: float) -> np.ndarray:
    """W' = W + s · A B (in, out): one matrix that computes x W' = x W + s (x A) B."""
    return W + scale * (A @ B)


def merge_params(params: Params, adapters: Params, scale: float) -> Params:
    """``params`` with every adapted layer's weight merged (``merge``); the other tensors are shared, not copied."""
    flat, ad = flatten_params(params), flatten_params(adapters)
    for name in ad:
        if name.endswith(".A"):
            layer = name[: -len(".A")]
            flat[f"{layer}.weight"] = merge(flat[f"{layer}.weight"], ad[name], ad[f"{layer}.B"], scale)
    return unflatten_params(flat)


def merged_to_adapter_grads(grads: Params, adapters: Params, scale: float) -> Params:
    """∂L/∂A = s · ∂L/∂W' Bᵀ and ∂L/∂B = s · Aᵀ ∂L/∂W' for each adapted layer, from the merged model's grads."""
    g, ad = flatten_params(grads), flatten_params(adapters)
    out = {}
    for name in ad:
        if name.endswith(".A"):
            layer = name[: -len(".A")]
            dW, A, B = g[f"{layer}.weight"], ad[name], ad[f"{layer}.B"]
            out[name], out[f"{layer}.B"] = scale * (dW @ B.T), scale * (A.T @ dW)  # (in, r), (r, out)
    return unflatten_params(out)


def forward_with_adapters(params: Params, adapters: Params, scale: float, idx: np.ndarray, cfg: GPTConfig):
    """Logits (B, T, V) of the GPT whose adapted layers compute x W + b + s (x A) B."""
    return forward(merge_params(params, adapters, scale), idx, cfg)


def loss_and_adapter_grads(
    params: Params,
    adapters: Params,
    scale: float,
    idx: np.ndarray,
    targets: np.ndarray,
    cfg: GPTConfig,
    ignore_index: int = -1,
) -> tuple[np.ndarray, Params]:
    """(L, ∂L/∂adapters) with the base frozen: grads in the adapters' layout, none for the base parameters."""
    loss, grads = loss_and_grads(merge_params(params, adapters, scale), idx, targets, cfg, ignore_index)
    return loss, merged_to_adapter_grads(grads, adapters, scale)
