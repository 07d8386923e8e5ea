"""Supervised fine-tuning (SFT): the language-model loss on the assistant's tokens only.

A chat example is one token sequence x_0 … x_T with a mask m_t that is 1 on the tokens the model must learn
to produce (each reply and its closing ``<|end|>``: ``minigpt.tokenizers.render_chat_with_mask``) and 0 on the
prompt (system, user, role headers). Position t predicts x_{t+1}, so the mask moves with the target:

    inputs_t = x_t,   targets_t = x_{t+1} if m_{t+1} else ignore_index          (t = 0 … T−1)
    L(θ) = Σ_t m_{t+1} · (−log P(x_{t+1} | x_≤t; θ)) / max(Σ_t m_{t+1}, 1)

the mean over the reply tokens, not over all positions; a batch with no reply token gives L = 0 and zero
gradients (the max(·, 1)), never 0/0. It is ``reference.cross_entropy`` with those targets; the backward is
``model_backward`` behind ∂L/∂logits = (softmax − onehot) · m / max(N, 1).
"""

from __future__ import annotations

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.reference.model import cross_entropy, forward
from minigpt.reference.model_backward import (
    cross_entropy_backward,
    cross_entropy_forward,
    model_backward,
    model_forward,
)
from minigpt.validation import check_targets


def sft_targets(ids: np.ndarray, mask: np.ndarray, ignore_index: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` from ids (B, T+1) and the trained-token mask (B, T+1): inputs = ids[:, :-1],
    targets_t = ids[:, t+1] where mask[:, t+1], else ``ignore_index`` — the mask of the *predicted* token."""
    ids, mask = np.asarray(ids), np.asarray(mask, dtype=bool)
    if ids.ndim != 2 or ids.shape != mask.shape or ids.shape[1] < 2:
        raise ValueError(
            f"ids and mask must both be (B, T+1) with T+1 ≥ 2, got {ids.shape} and {mask.shape}; "
            "use the ids and mask of render_chat_with_mask, stacked"
        )
    return ids[:, :-1], np.where(mask[:, 1:], ids[:, 1:], ignore_index).astype(ids.dtype)  # (B, T) each


def sft_loss(
    params: Params, idx: np.ndarray, targets: np.ndarray, cfg: GPTConfig, ignore_index: int = -1
) -> np.ndarray:
    """L(θ) = Σ_kept −log P(target | idx; θ) / max(N, 1) over the N targets ≠ ``ignore_index``; 0 if N = 0."""
    check_targets(targets, np.shape(idx), cfg, ignore_index, allow_all_ignored=True)
    return cross_entropy(forward(params, idx, cfg), np.asarray(targets), ignore_index)


def sft_loss_and_grads(
    params: Params, idx: np.ndarray, targets: np.ndarray, cfg: GPTConfig, ignore_index: int = -1
) -> tuple[np.ndarray, Params]:
    """(L, ∂L/∂θ) of ``sft_loss``, by hand; every gradient is exactly 0 when no target is kept."""
    check_targets(targets, np.shape(idx), cfg, ignore_index, allow_all_ignored=True)
    logits, cache = model_forward(params, idx, cfg)
    loss, ce = cross_entropy_forward(logits, np.asarray(targets), ignore_index)
    return loss, model_backward(cross_entropy_backward(1.0, ce), cache)
