"""The JAX twin: the GPT of ``minigpt.reference`` in Flax NNX, jit-ready, read top to bottom.

    layers.py   attention(q, k, v, mask) — the one attention formula — and the layers, the block
    cache.py    KVCache: fixed-size keys/values for decoding, and the left-padding mask rule
    gpt.py      GPT; token_nll / cross_entropy; from_params, to_params and the pure apply(params, idx, cfg)
    sft.py      the supervised fine-tuning loss (the NLL of the assistant's tokens only)
    dpo.py      DPO: sequence log-probs, the preference loss against a frozen reference, its metrics

Importing it changes no process state (JAX's and malloc's settings are ``minigpt.training.hostmem.configure_cpu()``).
"""

from minigpt.model.cache import KVCache, attention_allowed
from minigpt.model.dpo import dpo_loss, dpo_losses, dpo_margins, dpo_metrics, sequence_logprobs
from minigpt.model.gpt import GPT, apply, cross_entropy, from_params, jax_params, to_params, token_nll
from minigpt.model.layers import (
    MLP,
    Block,
    CausalSelfAttention,
    Embedding,
    LayerNorm,
    Linear,
    RMSNorm,
    attention,
    causal_mask,
    gelu,
    norm_layer,
    repeat_kv,
    rope,
    swiglu,
)
from minigpt.model.sft import sft_loss

__all__ = [
    "sft_loss",
    "sequence_logprobs",
    "dpo_metrics",
    "dpo_margins",
    "dpo_losses",
    "dpo_loss",
    "GPT",
    "MLP",
    "Block",
    "CausalSelfAttention",
    "Embedding",
    "KVCache",
    "LayerNorm",
    "Linear",
    "RMSNorm",
    "apply",
    "attention",
    "attention_allowed",
    "causal_mask",
    "cross_entropy",
    "from_params",
    "gelu",
    "jax_params",
    "norm_layer",
    "repeat_kv",
    "rope",
    "swiglu",
    "to_params",
    "token_nll",
]
