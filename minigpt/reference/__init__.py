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
    scaled_dot_product_attention,
    softmax,
    split_heads,
)
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

__all__ = [
    "attention_weights",
    "block",
    "causal_mask",
    "cross_entropy",
    "forward",
    "gelu",
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
    "scaled_dot_product_attention",
    "softmax",
    "split_heads",
    "validate_grads",
]
