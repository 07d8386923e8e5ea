"""``Linear`` multiplies on a 2-D (B·T, in) view (a CPU speed-up, #10): it must equal x W + b for any leading shape."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.model import Linear

lead_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=12, deadline=None)
@given(lead=lead_shapes, d_in=st.integers(1, 6), d_out=st.integers(1, 6), bias=st.booleans(), seed=st.integers(0, 99))
def test_linear_2d_view_equals_float64_xw_plus_b(x64, lead, d_in, d_out, bias, seed):
    """float64: the reshaped product is the same sum, equal to NumPy's x @ W + b to 1e-12."""
    layer = Linear(d_in, d_out, bias=bias, std=1.0, rngs=nnx.Rngs(seed), dtype=jnp.float64)
    if bias:
        layer.bias[...] = jax.random.normal(jax.random.key(seed + 1), (d_out,), jnp.float64)
    x = np.random.default_rng(seed).standard_normal((*lead, d_in))
    w = np.asarray(layer.weight[...])
    expected = x @ w + (np.asarray(layer.bias[...]) if bias else 0.0)
    y = np.asarray(layer(jnp.asarray(x)))
    assert y.shape == (*lead, d_out) and y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_linear_float32_3d_matches_batched_dot():
    """float32 at training shapes: 2-D view vs the batched 3-D dot (the former formulation) within 1e-5 relative."""
    layer = Linear(32, 128, bias=True, std=0.02, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (3, 16, 32), jnp.float32)
    batched = jnp.einsum("btc,cd->btd", x, layer.weight[...]) + layer.bias[...]
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(batched), rtol=1e-5, atol=1e-6)
