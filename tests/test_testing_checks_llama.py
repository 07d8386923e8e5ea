"""The Llama checkers: independent correct implementations pass, each planted classic mistake is named."""

import functools
import math
import re
import textwrap

import numpy as np
import pytest

from minigpt.testing import checkers
from minigpt.testing.checks import llama as C

# -- student implementations, written independently of the reference -----------------------------------


def good_rope(
    x, positions, theta, *, layout="half", base=None, shift=0, sign=1.0, exponent=2.0, swap=False, degrees=False,
    ignore_positions=False,
):  # fmt: skip
    d = x.shape[-1]
    inv = np.array([(base or theta) ** (-exponent * i / d) for i in range(d // 2)]) * sign
    positions = np.arange(x.shape[-2]) if ignore_positions else positions
    phi = (positions + shift)[:, None] * inv  # (T, d/2)
    phi = phi * math.pi / 180 if degrees else phi
    cos, sin = (np.sin(phi), np.cos(phi)) if swap else (np.cos(phi), np.sin(phi))
    if layout == "half":
        a, b = x[..., : d // 2], x[..., d // 2 :]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
    out = x.copy()
    a, b = x[..., 0::2], x[..., 1::2]
    out[..., 0::2], out[..., 1::2] = a * np.cos(phi) - b * np.sin(phi), b * np.cos(phi) + a * np.sin(phi)
    return out


def good_rms_norm(x, w, eps, *, centre=False, eps_outside=False, via_var=False, no_eps=False):
    if via_var:
        return x / np.sqrt(np.var(x, axis=-1, keepdims=True) + eps) * w
    if no_eps:
        return x / np.sqrt((x**2).mean(-1, keepdims=True)) * w
    if centre:
        x = x - x.mean(-1, keepdims=True)
    ms = (x**2).mean(-1, keepdims=True)
    return x / (np.sqrt(ms) + eps if eps_outside else np.sqrt(ms + eps)) * w


def good_swiglu(x, p, *, swap=False, act="silu", no_up=False):
    g, u = x @ p["c_gate"]["weight"], x @ p["c_fc"]["weight"]
    if swap:
        g, u = u, g
    sig = 1 / (1 + np.exp(-g))
    a = {"silu": g * sig, "sigmoid": sig, "relu": np.maximum(g, 0.0)}[act]
    return (a * (1.0 if no_up else u)) @ p["c_proj"]["weight"]


def good_repeat_kv(x, n, *, tile=False):
    B, Hk, T, d = x.shape
    if tile:
        return np.concatenate([x] * n, axis=1)
    return np.stack([x[:, h // n] for h in range(Hk * n)], axis=1)


def good_cached_step(x, attn, H, H_kv, past_k, past_v, theta, *, rotate_v=False, shift=0, zero=False, tile=False):
    B, _, Ch = x.shape
    d = Ch // H
    qkv = x @ attn["c_attn"]["weight"]  # (B, 1, (H + 2H_kv)·d)
    q, k, v = qkv[..., : H * d], qkv[..., H * d : (H + H_kv) * d], qkv[..., (H + H_kv) * d :]
    q, k, v = q.reshape(B, H, 1, d), k.reshape(B, H_kv, 1, d), v.reshape(B, H_kv, 1, d)  # T = 1: no transpose
    pos = np.array([0 if zero else past_k.shape[2] + shift])
    q, k = good_rope(q, pos, theta), good_rope(k, pos, theta)
    if rotate_v:
        v = good_rope(v, pos, theta)
    k, v = np.concatenate([past_k, k], 2), np.concatenate([past_v, v], 2)
    k, v = good_repeat_kv(k, H // H_kv, tile=tile), good_repeat_kv(v, H // H_kv, tile=tile)
    s = q @ k.swapaxes(-1, -2) / math.sqrt(d)
    w = np.exp(s - s.max(-1, keepdims=True))
    y = (w / w.sum(-1, keepdims=True)) @ v  # (B, H, 1, d)
    return y.reshape(B, 1, Ch) @ attn["c_proj"]["weight"]


def test_correct_implementations_pass():
    C.check_rope(good_rope)
    C.check_rms_norm(good_rms_norm)
    C.check_swiglu(good_swiglu)
    C.check_repeat_kv(good_repeat_kv)
    C.check_rope_cached_step(good_cached_step)


def test_checkers_module_reexports_them():
    assert checkers.check_rope is C.check_rope and checkers.check_rope_cached_step is C.check_rope_cached_step


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        (dict(layout="interleaved"), "half-split layout"),
        (dict(base=10000.0), "wrong frequency base"),
        (dict(exponent=1.0), "wrong frequency base"),
        (dict(sign=-1.0), "wrong way"),
        (dict(shift=1), "off by one"),
        (dict(swap=True), "cos and sin are swapped"),
        (dict(ignore_positions=True), "positions you were given are ignored"),
        (dict(degrees=True), "converted from degrees"),
    ],
)
def test_rope_mistakes_are_named(planted, message):
    with pytest.raises(AssertionError, match=message):
        C.check_rope(lambda x, p, t: good_rope(x, p, t, **planted))


def test_rope_properties_are_checked():
    with pytest.raises(AssertionError, match="norms of the vectors changed"):
        C.check_rope(lambda x, p, t: 2.0 * good_rope(x, p, t))


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        (dict(centre=True), "LayerNorm"),
        (dict(eps_outside=True), "inside the square root"),
        (dict(via_var=True), "np.var subtracts the mean"),
    ],
)
def test_rms_norm_mistakes_are_named(planted, message):
    with pytest.raises(AssertionError, match=message):
        C.check_rms_norm(lambda x, w, eps: good_rms_norm(x, w, eps, **planted))


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        (dict(swap=True), "SiLU went on the up projection"),
        (dict(act="sigmoid"), "sigmoid"),
        (dict(act="relu"), "you used ReLU"),
        (dict(no_up=True), "the up projection is missing"),  # not "sigmoid": the weights of a shrunk example differ
    ],
)
def test_swiglu_mistakes_are_named(planted, message):
    with pytest.raises(AssertionError, match=message):
        C.check_swiglu(lambda x, p: good_swiglu(x, p, **planted))


def test_repeat_kv_wrong_order_is_named():
    with pytest.raises(AssertionError, match="wrong order"):
        C.check_repeat_kv(lambda x, n: good_repeat_kv(x, n, tile=True))


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        (dict(rotate_v=True), "rotated V"),
        (dict(shift=1), "off by one"),
        (dict(shift=-1), "off by one"),
        (dict(zero=True), "position 0"),
        (dict(tile=True), "wrong order"),
    ],
)
def test_cached_step_mistakes_are_named(planted, message):
    with pytest.raises(AssertionError, match=message):
        C.check_rope_cached_step(lambda *a: good_cached_step(*a, **planted))


def failing_input(message: str) -> dict:
    """Run the "Smallest failing input" block of a diagnosis as the student would paste it."""
    block = message.split("Smallest failing input:\n", 1)[1]
    namespace: dict = {"np": np}
    exec(textwrap.dedent(block), namespace)  # noqa: S102 - the checker's own output, in a test
    return namespace


def test_a_failing_example_prints_as_code_that_reruns_it():
    planted = functools.partial(good_swiglu, no_up=True)
    with pytest.raises(AssertionError) as e:
        C.check_swiglu(planted)
    assert "<parameters" not in str(e.value)
    ins = failing_input(str(e.value))
    x, mlp = ins["x"], ins["mlp"]
    weights = [mlp[k]["weight"] for k in ("c_gate", "c_fc")]
    assert not np.allclose(weights[0], weights[1])  # distinct weights stayed distinct while shrinking
    assert not np.allclose(planted(x, mlp), good_swiglu(x, mlp))  # the pasted example still fails


def test_values_are_printed_with_enough_digits_to_differ():
    with pytest.raises(AssertionError) as e:
        C.check_rms_norm(lambda x, w, eps: good_rms_norm(x, w, eps, no_eps=True))
    yours, expected = re.search(r"yours (\S+), expected (\S+)\)", str(e.value)).groups()
    assert yours != expected
