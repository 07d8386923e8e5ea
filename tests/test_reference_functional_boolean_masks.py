"""Boolean attention masks (True = may attend, torch's convention) in both twins: the NumPy reference's
``scaled_dot_product_attention`` and the Flax model's ``attention``, against torch's boolean-mask attention, an
explicit ``np.where`` computation, each other (float64) and the same mask written additively."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import reference as ref
from minigpt.model import attention

attention_and_weights = jax.jit(functools.partial(attention, return_weights=True))


@pytest.fixture(scope="module")
def torch():
    """torch, imported once (part of the dev extra, so a missing install fails loudly)."""
    import torch

    torch.set_num_threads(1)  # the CI box has 2 cores shared with other test modules
    return torch


@st.composite
def qkv_and_mask(draw):
    """(q, k, v) float64 of shapes (B, H, T_q, d), (B, H, T_k, d), (B, H, T_k, d_v) and a boolean mask of shape
    (T_q, T_k) or (B, 1, T_q, T_k) where every query may attend at least one key."""
    B, H, Tq, Tk = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    d, dv = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    q, k, v = (rng.standard_normal((B, H, t, n)) for t, n in ((Tq, d), (Tk, d), (Tk, dv)))
    shape = draw(st.sampled_from([(Tq, Tk), (B, 1, Tq, Tk)]))
    allowed = rng.random(shape) < draw(st.sampled_from([0.2, 0.5, 0.9]))
    rows = np.indices(shape[:-1])  # one key per query that stays allowed, so that no row of weights is 0/0
    allowed[(*rows, rng.integers(0, Tk, shape[:-1]))] = True
    return q, k, v, allowed


def where_attention(q, k, v, allowed):
    """softmax over the allowed keys only, written out: exp(s - max allowed s) where allowed, 0 elsewhere."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # (B, H, T_q, T_k)
    top = np.max(np.where(allowed, s, -np.inf), axis=-1, keepdims=True)  # (B, H, T_q, 1)
    e = np.where(allowed, np.exp(np.where(allowed, s, top) - top), 0.0)
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


@settings(max_examples=40, deadline=None)
@given(qkv_and_mask())
def test_reference_boolean_mask_is_the_np_where_formula_and_torchs_attention(torch, example):
    q, k, v, allowed = example
    got, got_w = ref.scaled_dot_product_attention(q, k, v, allowed, return_weights=True)
    want, want_w = where_attention(q, k, v, allowed)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-12, atol=1e-13)
    assert np.all(got_w[..., ~np.broadcast_to(allowed, got_w.shape)] == 0.0)  # masked keys get no weight at all
    t = [torch.from_numpy(a) for a in (q, k, v, allowed)]
    want_torch = torch.nn.functional.scaled_dot_product_attention(*t[:3], attn_mask=t[3]).numpy()
    np.testing.assert_allclose(got, want_torch, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(qkv_and_mask())
def test_jax_boolean_mask_is_the_reference_float64_and_torchs_attention(x64, torch, example):
    q, k, v, allowed = example
    got, got_w = attention_and_weights(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(allowed))
    want, want_w = ref.scaled_dot_product_attention(q, k, v, allowed, return_weights=True)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(got_w), want_w, rtol=1e-12, atol=1e-13)
    t = [torch.from_numpy(a) for a in (q, k, v, allowed)]
    want_torch = torch.nn.functional.scaled_dot_product_attention(*t[:3], attn_mask=t[3]).numpy()
    np.testing.assert_allclose(np.asarray(got), want_torch, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(qkv_and_mask())
def test_a_boolean_mask_and_its_additive_form_give_the_same_bits(x64, example):
    q, k, v, allowed = example
    additive = np.where(allowed, 0.0, -np.inf)  # what the model builds internally (causal_mask, KVCache.mask)
    np.testing.assert_array_equal(
        ref.scaled_dot_product_attention(q, k, v, allowed), ref.scaled_dot_product_attention(q, k, v, additive)
    )
    jq, jk, jv = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
    by_bool, _ = attention_and_weights(jq, jk, jv, jnp.asarray(allowed))
    by_add, _ = attention_and_weights(jq, jk, jv, jnp.asarray(additive))
    np.testing.assert_array_equal(np.asarray(by_bool), np.asarray(by_add))


def test_the_causal_boolean_mask_of_the_issue_matches_torch_float32(torch):
    """The report: np.tril(np.ones((T, T), bool)) was added as 0/1, about 60 % (relative) off torch's output."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 8, 16)).astype(np.float32) for _ in range(3))
    allowed = np.tril(np.ones((8, 8), bool))
    want = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v, allowed)))
    np.testing.assert_allclose(ref.scaled_dot_product_attention(q, k, v, allowed), want.numpy(), rtol=2e-5, atol=2e-6)
    got = attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(allowed))
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=2e-5, atol=2e-6)
