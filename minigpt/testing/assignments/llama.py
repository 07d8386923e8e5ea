"""Exercises for lesson 10 (from GPT-2 to Llama): RMSNorm, RoPE, SwiGLU, shared key/value heads and one cached
decoding step with RoPE and grouped heads."""

from __future__ import annotations

from functools import partial

from minigpt.reference import llama as LL
from minigpt.testing.checks import llama as C
from minigpt.testing.grader.grading import Assignment

ASSIGNMENT = Assignment("10_gpt2_to_llama")
ASSIGNMENT.task("rms_norm", reference=lambda x, weight, eps: LL.rms_norm(x, weight, None, eps)).check(
    "matches x / √(mean(x²) + ε) · γ", 2, partial(C.check_rms_norm, max_examples=20)
)
ASSIGNMENT.task("rope", reference=LL.rope).check(
    "matches the reference; keeps norms; scores depend on distance", 3, partial(C.check_rope, max_examples=20)
).check("on fresh inputs", 1, partial(C.check_rope, max_examples=10), hidden=True)
ASSIGNMENT.task("swiglu").check("matches (SiLU(x W_gate) ⊙ x W_fc) W_proj", 2, partial(C.check_swiglu, max_examples=15))
ASSIGNMENT.task("repeat_kv", reference=LL.repeat_kv).check(
    "each kv head repeated n_rep times in a row", 1, partial(C.check_repeat_kv, max_examples=15)
)
ASSIGNMENT.task("cached_step").check(
    "matches one cached step of grouped-query attention", 3, partial(C.check_rope_cached_step, max_examples=15)
).check("on fresh inputs", 1, partial(C.check_rope_cached_step, max_examples=8), hidden=True)
