"""Each teaching diagram draws (on an explicit Figure, leaving pyplot alone), its text is readable (≥ 9 pt), and
the numbers it encodes are right, checked against an independent computation."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg

from minigpt.viz import diagrams as D


def drawn(fig):
    FigureCanvasAgg(fig).draw()  # a real render: layout and fonts, not just object creation
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert texts, "a diagram without any label"
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 9]
    assert not small, f"text below 9 pt: {small}"
    return texts


@pytest.mark.parametrize(
    "make",
    [
        lambda: D.decoder_block_figure(),
        lambda: D.decoder_block_figure(("gpt2", "llama")),
        lambda: D.head_split_figure(4, 4, 3),
        lambda: D.kv_cache_figure(3, 5, 9),
        lambda: D.lora_figure(16, 12, 2),
        lambda: D.soft_lookup_figure(np.ones(4), np.eye(4), np.arange(4.0), list("这款手机")),
    ],
    ids=["block", "gpt2+llama", "heads", "kv", "lora", "lookup"],
)
def test_each_diagram_draws_with_readable_text_and_no_pyplot(make):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    drawn(make())
    assert plt.get_fignums() == before  # no figure registered with pyplot's global state


def test_the_llama_block_names_what_changed():
    texts = " ".join(t.get_text() for t in drawn(D.decoder_block_figure(("gpt2", "llama"))))
    for word in ("LayerNorm", "RMSNorm", "GELU", "SwiGLU", "RoPE", "wpe"):
        assert word in texts
    with pytest.raises(ValueError, match="kinds must be"):
        D.decoder_block_figure(("bert",))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_lookup_weights_are_the_softmax_of_scaled_dot_products(S, d, seed):
    rng = np.random.default_rng(seed)
    q, keys = rng.normal(size=d) * 3, rng.normal(size=(S, d)) * 3
    scores = [sum(q[i] * keys[s, i] for i in range(d)) / math.sqrt(d) for s in range(S)]  # one by one
    expected = [math.exp(x) / sum(math.exp(y) for y in scores) for x in scores]
    assert np.allclose(D.lookup_weights(q, keys), expected, rtol=1e-10, atol=1e-12)


def test_the_lookup_figure_draws_the_weights_and_their_average():
    rng = np.random.default_rng(0)
    q, keys, values = rng.normal(size=3), rng.normal(size=(4, 3)) * 2, np.array([1.0, 2.0, 5.0, -1.0])
    fig = D.soft_lookup_figure(q, keys, values, ["a", "b", "c", "d"])
    drawn(fig)
    w = D.lookup_weights(q, keys)
    bars = [p.get_height() for p in fig.axes[1].patches]
    assert np.allclose(bars, w)
    assert np.isclose(fig.axes[2].patches[0].get_height(), float(np.dot(w, values)))
    assert f"{float(np.dot(w, values)):.2f}" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="one scalar value and one name per key"):
        D.soft_lookup_figure(q, keys, values[:3], ["a", "b", "c"])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 6), st.integers(0, 4))
def test_cache_states_follow_prefill_then_one_slot_per_step(prompt_len, n_new, spare):
    n_slots = prompt_len + n_new + spare
    states = D.cache_states(prompt_len, n_new, n_slots)
    assert states.shape == (1 + n_new, n_slots)
    for row, state in enumerate(states):
        written = prompt_len + row  # slots holding keys and values after this call
        assert np.count_nonzero(state) == written
        assert np.all(state[written:] == D.EMPTY)
        new = np.flatnonzero(state == D.NEW)
        assert list(new) == (list(range(prompt_len)) if row == 0 else [written - 1])  # the prefill writes all at once
    with pytest.raises(ValueError, match="prompt_len"):
        D.cache_states(4, 4, 7)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 16))
def test_lora_counts_are_the_sizes_of_w_and_of_a_and_b(d_in, d_out, r):
    n_w, n_ab = D.lora_counts(d_in, d_out, r)
    assert n_w == np.zeros((d_in, d_out)).size
    assert n_ab == np.zeros((d_in, r)).size + np.zeros((r, d_out)).size


def test_lora_figure_states_the_counts_and_draws_to_scale():
    fig = D.lora_figure(16, 12, 2)
    drawn(fig)
    assert "192" in fig.axes[0].get_title() and "56" in fig.axes[0].get_title()
    sizes = sorted((p.get_width(), p.get_height()) for p in fig.axes[0].patches)
    assert sizes == sorted([(12, 16), (2, 16), (12, 2)])  # W, A, B as (columns, rows)


def test_head_split_colours_channel_c_by_head_c_div_dk():
    fig = D.head_split_figure(T=2, n_head=3, d_k=2)
    drawn(fig)
    first, *heads, last = (ax.images[0].get_array() for ax in fig.axes)
    assert np.array_equal(first[0], [0, 0, 1, 1, 2, 2]) and np.array_equal(first, last)
    assert [int(h.mean()) for h in heads] == [0, 1, 2] and all(h.shape == (2, 2) for h in heads)
    with pytest.raises(ValueError, match="n_head"):
        D.head_split_figure(2, 0, 2)
