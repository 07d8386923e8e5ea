"""minigpt.reference — the GPT in plain NumPy, written to be read like a textbook."""

from minigpt.reference.functional import (
    causal_mask,
    gelu,
    layer_norm,
    linear,
    log_softmax,
    merge_heads,
    mlp,
    multi_head_attention,
    norm,
    project_qkv,
    scaled_dot_product_attention,
    softmax,
    split_heads,
)
from minigpt.reference.llama import repeat_kv, rms_norm, rope, rope_angles, silu, swiglu
from minigpt.reference.model import (
    attention_weights,
    block,
    cross_entropy,
    forward,
    hidden_states,
    init_params,
    loss,
)
from minigpt.reference.model_backward import loss_and_grads, validate_grads
from minigpt.reference.optim import AdamW, AdamWState, clip_by_global_norm, global_norm
from minigpt.reference.train import train_numpy

__all__ = [
    "AdamW",
    "AdamWState",
    "attention_weights",
    "block",
    "causal_mask",
    "clip_by_global_norm",
    "cross_entropy",
    "forward",
    "gelu",
    "global_norm",
    "hidden_states",
    "init_params",
    "layer_norm",
    "linear",
    "log_softmax",
    "loss",
    "loss_and_grads",
    "merge_heads",
    "mlp",
    "multi_head_attention",
    "norm",
    "project_qkv",
    "repeat_kv",
    "rms_norm",
    "rope",
    "rope_angles",
    "silu",
    "swiglu",
    "scaled_dot_product_attention",
    "softmax",
    "split_heads",
    "train_numpy",
    "validate_grads",
]
