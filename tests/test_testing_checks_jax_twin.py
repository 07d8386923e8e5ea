"""Lesson 05 checkers: JAX layers under jit pass against their NumPy twins; untraceable code and mistakes named."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minigpt.testing.checks import jax_twin as JC


def gelu(x):
    return 0.5 * x * (1 + jnp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def grads(dy, x, w, b, eps):
    out, vjp = jax.vjp(lambda x, w, b: layer_norm(x, w, b, eps), x, w, b)
    return vjp(dy)


def fails_with(checker, fn, *phrases):
    with pytest.raises(AssertionError) as e:
        checker(fn)
    for phrase in phrases:
        assert phrase in str(e.value), str(e.value)


def test_correct_jax_layers_pass():
    JC.check_jax_gelu(gelu, max_examples=8)
    JC.check_jax_layer_norm(layer_norm, max_examples=8)
    JC.check_jax_layer_norm_grads(grads, max_examples=5)


def test_untraceable_code_is_named():
    fails_with(JC.check_jax_gelu, lambda x: gelu(np.asarray(x)), "does not run under jax.jit", "use jax.numpy")
    fails_with(
        JC.check_jax_layer_norm, lambda x, w, b, eps: layer_norm(x, w, b, eps) if float(x.sum()) else x, "jax.jit"
    )


def test_mistakes_are_named():
    fails_with(JC.check_jax_gelu, lambda x: 0.5 * x * (1 + jax.scipy.special.erf(x / math.sqrt(2))), "exact GELU")
    fails_with(JC.check_jax_layer_norm, lambda x, w, b, eps: layer_norm(x, w, b, eps) - b, "bias")
    without_dy = lambda dy, x, w, b, eps: grads(jnp.ones_like(dy), x, w, b, eps)  # noqa: E731
    fails_with(JC.check_jax_layer_norm_grads, without_dy, "layer_norm backward")
