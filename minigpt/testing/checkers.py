"""Every lesson checker under one name: ``from minigpt.testing.checkers import check_attention``.

The checkers live one module per lesson in ``minigpt.testing.checks`` (its docstring lists them); this module
only gathers them, so that notebooks, assignments and instructors' scripts can import any ``check_*`` from here.

Each ``check_*`` runs the student's function on hypothesis-drawn inputs (derandomized, so every student sees the
same examples), compares it with ``minigpt.reference`` in float64 and, on the first mismatch, lets hypothesis
shrink the input to the smallest one that still fails. The ``AssertionError`` says what is wrong in words, found
by matching the student's output against a zoo of known mistakes, and shows that smallest input.
"""

from minigpt.testing.checks.assistant import (
    check_dpo_grads,
    check_dpo_loss,
    check_sequence_logprobs,
    check_sft_loss,
    check_sft_targets,
)
from minigpt.testing.checks.attention import check_attention, check_causal_mask, check_softmax
from minigpt.testing.checks.backprop import BACKWARD_LAYERS, check_layer_backward
from minigpt.testing.checks.decoding import check_banned_mask, check_beam_step, check_top_k_filter, check_top_p_filter
from minigpt.testing.checks.ecommerce import (
    check_conditional_log_likelihood,
    check_precision_recall,
    check_zero_shot_score,
)
from minigpt.testing.checks.forward_and_loss import (
    check_gpt_forward,
    check_layer_norm,
    check_loss,
    check_sequence_log_likelihood,
)
from minigpt.testing.checks.jax_twin import check_jax_gelu, check_jax_layer_norm, check_jax_layer_norm_grads
from minigpt.testing.checks.llama import (
    check_repeat_kv,
    check_rms_norm,
    check_rope,
    check_rope_cached_step,
    check_swiglu,
)
from minigpt.testing.checks.looking_inside import check_attribute, check_logit_lens, check_patch_position
from minigpt.testing.checks.lora import check_lora
from minigpt.testing.checks.multi_head import check_merge_heads, check_multi_head_attention, check_split_heads
from minigpt.testing.checks.training import check_adamw_step, check_clip_by_global_norm, check_warmup_cosine

__all__ = [
    "BACKWARD_LAYERS",
    "check_adamw_step",
    "check_attention",
    "check_attribute",
    "check_banned_mask",
    "check_beam_step",
    "check_causal_mask",
    "check_clip_by_global_norm",
    "check_conditional_log_likelihood",
    "check_dpo_grads",
    "check_dpo_loss",
    "check_gpt_forward",
    "check_jax_gelu",
    "check_jax_layer_norm",
    "check_jax_layer_norm_grads",
    "check_layer_backward",
    "check_layer_norm",
    "check_logit_lens",
    "check_lora",
    "check_loss",
    "check_merge_heads",
    "check_multi_head_attention",
    "check_patch_position",
    "check_precision_recall",
    "check_repeat_kv",
    "check_rms_norm",
    "check_rope",
    "check_rope_cached_step",
    "check_sequence_log_likelihood",
    "check_sequence_logprobs",
    "check_sft_loss",
    "check_sft_targets",
    "check_softmax",
    "check_split_heads",
    "check_swiglu",
    "check_top_k_filter",
    "check_top_p_filter",
    "check_warmup_cosine",
    "check_zero_shot_score",
]
