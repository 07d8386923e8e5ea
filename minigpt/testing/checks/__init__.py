"""The lesson checkers: one module per lesson, each ``check_*(student_fn)`` diagnosing a student's function.

    attention          01  softmax, the causal mask, scaled dot-product attention
    multi_head         02  splitting and merging heads, multi-head attention
    forward_and_loss   03  LayerNorm, the GPT forward pass, the loss, the sequence log-likelihood
    backprop           04  one layer's backward pass (``gradients``: finite differences and the comparison)
    jax_twin           05  GELU and LayerNorm in JAX, and LayerNorm's gradients through ``jax.grad``
    training           06  AdamW's step, global-norm clipping, the warmup-cosine schedule
    decoding           07  top-k and top-p filters, banned-phrase masks, one beam-search step
    ecommerce          08  conditional log-likelihood, zero-shot scores, precision and recall
    lora               09  the LoRA linear layer
    llama              10  RoPE, RMSNorm, SwiGLU, repeat_kv, RoPE with a KV cache
    assistant          11  SFT targets and the masked SFT loss, a reply's log-probability (``preference``: the
                           DPO loss, and its gradient by ``jax.grad`` with the reference frozen)
    looking_inside     12  the logit lens, logit attribution, patching one position

``diagnosis`` is their common machinery: draw inputs, call the student's function, compare with the reference
in float64 and name the classic mistake that a mismatch matches. ``minigpt.testing.checkers`` re-exports every
``check_*`` under one name.
"""
