"""Supervised fine-tuning loss, the JAX twin of ``minigpt.reference.sft``.

    L(θ) = Σ_t m_{t+1} · (−log P(x_{t+1} | x_≤t; θ)) / max(Σ_t m_{t+1}, 1)

the token NLL averaged over the assistant's tokens only (targets ≠ ignore_index), 0 with zero gradients for a
batch without one. ``cross_entropy`` already computes exactly this masked mean, so SFT is the LM loss on
targets masked by ``reference.sft.sft_targets``; this module names it and checks the inputs at the boundary.
"""

from __future__ import annotations

from typing import Any

import jax

from minigpt.config import GPTConfig
from minigpt.model.gpt import apply, cross_entropy
from minigpt.params import Params
from minigpt.validation import check_targets


def sft_loss(
    params: Params, idx: jax.Array, targets: jax.Array, cfg: GPTConfig, ignore_index: int = -1, **options: Any
) -> jax.Array:
    """L(θ) = Σ_kept −log P(target | idx; θ) / max(N, 1), a 0-d array; ``options`` go to ``apply``."""
    check_targets(targets, idx.shape, cfg, ignore_index, allow_all_ignored=True)
    return cross_entropy(apply(params, idx, cfg, **options), targets, ignore_index)
