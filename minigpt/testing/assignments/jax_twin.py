"""Exercises for lesson 05 (JAX and Flax): GELU and LayerNorm in jax.numpy under jit, and LayerNorm's gradient
by jax.grad — each checked against its NumPy twin."""

from __future__ import annotations

from functools import partial

from minigpt.testing.checks.jax_twin import check_jax_gelu, check_jax_layer_norm, check_jax_layer_norm_grads
from minigpt.testing.grader.grading import Assignment


def layer_norm_jnp(x, weight, bias, eps):
    """Stands in for the student's layer_norm_jax while their gradient is graded: it must trace under jit."""
    import jax.numpy as jnp  # JAX: loading the assignments needs none

    mu = jnp.mean(x, axis=-1, keepdims=True)
    return (x - mu) / jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + eps) * weight + bias


ASSIGNMENT = Assignment("05_jax_flax")
ASSIGNMENT.task("gelu_jax").check(
    "equals reference.gelu under jit (float64)", 2, partial(check_jax_gelu, max_examples=15)
)
ASSIGNMENT.task("layer_norm_jax", reference=layer_norm_jnp).check(
    "equals reference.layer_norm under jit (float64)", 2, partial(check_jax_layer_norm, max_examples=15)
)
ASSIGNMENT.task("layer_norm_grads").check(
    "jax.grad equals the hand-written backward", 3, partial(check_jax_layer_norm_grads, max_examples=10)
).check("on fresh inputs", 1, partial(check_jax_layer_norm_grads, max_examples=5), hidden=True)
