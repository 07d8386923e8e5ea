"""Checkers for the Llama exercises: RoPE, RMSNorm, SwiGLU and grouped-query attention, each mistake named.

Like ``minigpt.testing.checkers``: the student's function runs on hypothesis-drawn inputs (derandomized), is
compared with ``minigpt.reference`` in float64, and a mismatch raises an ``AssertionError`` that names the
classic mistake it matches (checked by recomputing the answer *with* that mistake) and shows the smallest
failing input. RoPE is also checked by its defining properties: rotations keep norms, and attention scores
depend only on the distance between positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import functional as F
from minigpt.reference import llama as LL
from minigpt.testing.checks.diagnosis import Mistake, call, compare, describe, generator, run

__all__ = ["check_repeat_kv", "check_rms_norm", "check_rope", "check_rope_cached_step", "check_swiglu"]


def _show(inputs: dict[str, Any]) -> str:
    return "\nSmallest failing input:\n" + describe(inputs)


def _diagnose(got: Any, want: np.ndarray, inputs: dict, mistakes: list[Mistake], what: str, tol: float = 1e-7):
    """Return if ``got`` ≈ ``want``; else raise an AssertionError naming the first mistake ``got`` reproduces."""
    compare(got, want, inputs, mistakes, what=what, rtol=tol, atol=tol)


def _normals(draw: st.DrawFn, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Standard-normal arrays of these shapes, drawn in turn from ONE generator: when hypothesis shrinks its seed to
    0 the arrays stay distinct (two seeds shrunk to the same value would make, say, W_gate = W_fc, and two
    different mistakes would then give the same numbers)."""
    rng = generator(draw)
    return [rng.standard_normal(shape) for shape in shapes]


def _normal(draw: st.DrawFn, *shape: int) -> np.ndarray:
    return _normals(draw, shape)[0]


# -- RoPE --------------------------------------------------------------------------------------------


def _rope_interleaved(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    phi = LL.rope_angles(positions, x.shape[-1], theta)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = x1 * np.cos(phi) - x2 * np.sin(phi), x2 * np.cos(phi) + x1 * np.sin(phi)
    return out


def _rope_with(x: np.ndarray, positions: np.ndarray, theta: float, *, swap: bool = False, degrees: bool = False):
    """Llama's RoPE with cos and sin swapped, or its angles read as degrees (two classic mistakes)."""
    phi = LL.rope_angles(positions, x.shape[-1], theta)  # (T, d/2)
    phi = np.deg2rad(phi) if degrees else phi
    cos, sin = (np.sin(phi), np.cos(phi)) if swap else (np.cos(phi), np.sin(phi))
    x1, x2 = np.split(x, 2, axis=-1)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _rope_mistakes(x: np.ndarray, positions: np.ndarray, theta: float) -> list[Mistake]:
    d = x.shape[-1]
    wrong_base = (
        "wrong frequency base: pair i turns by position · θ^(−2i/d) — use the θ you are given, the exponent 2i/d "
        "(i = 0 … d/2 − 1) and d the head size."
    )

    def with_freqs(inv_freq):
        phi = np.asarray(positions, float)[..., None] * inv_freq
        x1, x2 = np.split(x, 2, axis=-1)
        return np.concatenate([x1 * np.cos(phi) - x2 * np.sin(phi), x2 * np.cos(phi) + x1 * np.sin(phi)], -1)

    i = np.arange(d // 2)
    return [
        (
            "you paired neighbouring channels (2i, 2i+1) — the interleaved layout — but these weights use Llama's "
            "half-split layout (transformers' rotate_half): channel i pairs with channel i + d/2.",
            lambda: _rope_interleaved(x, positions, theta),
        ),
        (wrong_base, lambda: with_freqs(10000.0 ** (-2 * i / d))),
        (wrong_base, lambda: with_freqs(theta ** (-i / d))),
        (wrong_base, lambda: with_freqs(theta ** (-2 * i / (d // 2)))),
        (wrong_base, lambda: with_freqs(theta ** (2 * i / d))),
        ("the rotation goes the wrong way: x₁ cos φ − x₂ sin φ, then x₂ cos φ + x₁ sin φ.",
         lambda: with_freqs(-(theta ** (-2 * i / d)))),
        ("positions are off by one: the first token has position 0.", lambda: LL.rope(x, positions + 1, theta)),
        ("cos and sin are swapped: the pair turns as x₁ cos φ − x₂ sin φ, x₂ cos φ + x₁ sin φ.",
         lambda: _rope_with(x, positions, theta, swap=True)),
        ("the positions you were given are ignored: the token at positions[t] turns by positions[t] · θ^(−2i/d), "
         "not t · θ^(−2i/d) (a cached step starts past 0).",
         lambda: LL.rope(x, np.arange(x.shape[-2]), theta)),
        ("no token was rotated: each pair turns by the angle position · θ^(−2i/d), which is not 0 past position 0.",
         lambda: x),
        ("the angles were converted from degrees: position · θ^(−2i/d) is already in radians — pass it to np.cos "
         "and np.sin as it is.", lambda: _rope_with(x, positions, theta, degrees=True)),
    ]  # fmt: skip


def check_rope(fn: Callable[..., np.ndarray], max_examples: int = 40) -> None:
    """``fn(x, positions, theta)``: RoPE of x (B, T, d) at integer positions (T,) with frequency base θ,
    Llama's half-split pairing (``minigpt.reference.llama.rope``)."""

    @st.composite
    def inputs(draw):
        B, T, d = draw(st.integers(1, 2)), draw(st.integers(1, 5)), 2 * draw(st.integers(1, 4))
        start = draw(st.integers(0, 20))
        return _normal(draw, B, T, d), np.arange(start, start + T), draw(st.sampled_from([10000.0, 100.0, 10.0]))

    def prop(example):
        x, pos, theta = example
        ins = {"x": x, "positions": pos, "theta": theta}
        got = np.asarray(call(fn, "rope", ins, x.copy(), pos.copy(), theta))
        if got.shape == x.shape and not np.allclose(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1)):
            raise AssertionError(
                "rope: the norms of the vectors changed — RoPE only rotates pairs of channels, so ‖RoPE(x)‖ = ‖x‖ "
                "(each pair uses cos and sin of the same angle)." + _show(ins)
            )
        _diagnose(got, LL.rope(x, pos, theta), ins, _rope_mistakes(x, pos, theta), "rope")
        q, k = x[:1, :1], x[-1:, -1:]  # one query and one key vector, moved together along the sequence
        scores = [float(np.sum(fn(q, pos[:1] + s, theta) * fn(k, pos[-1:] + s, theta))) for s in (0, 3)]
        if not np.isclose(scores[0], scores[1], rtol=1e-7, atol=1e-9):
            raise AssertionError(
                "rope: moving query and key by the same number of positions changed their score; with RoPE "
                "⟨RoPE(q)_s, RoPE(k)_t⟩ depends only on s − t." + _show(ins)
            )

    run(prop, inputs(), max_examples)


# -- RMSNorm and SwiGLU --------------------------------------------------------------------------------


def check_rms_norm(fn: Callable[..., np.ndarray], max_examples: int = 40) -> None:
    """``fn(x, weight, eps)``: x / √(mean(x²) + ε) · γ over the last axis (``minigpt.reference.llama.rms_norm``)."""

    @st.composite
    def inputs(draw):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(2, 8)))
        x, g = _normals(draw, shape, (shape[-1],))
        return x * 2 + 1, g + 1, draw(st.sampled_from([1e-5, 0.1, 1.0]))

    def prop(example):
        x, g, eps = example
        ins = {"x": x, "weight": g, "eps": eps}
        got = call(fn, "rms_norm", ins, x.copy(), g.copy(), eps)
        ms = np.mean(x * x, -1, keepdims=True)
        mistakes = [
            ("you subtracted the mean — that is LayerNorm; RMSNorm divides by the root mean square and does not "
             "centre x.", lambda: F.layer_norm(x, g, None, eps)),
            ("ε belongs inside the square root: √(mean(x²) + ε).", lambda: x / (np.sqrt(ms) + eps) * g),
            ("use the mean of x² over the C channels, not the sum.",
             lambda: x / np.sqrt(np.sum(x * x, -1, keepdims=True) + eps) * g),
            ("the root is missing: divide by √(mean(x²) + ε), not mean(x²) + ε.", lambda: x / (ms + eps) * g),
            ("the gain γ (weight) was not applied.", lambda: x / np.sqrt(ms + eps)),
            ("np.var subtracts the mean first: RMSNorm divides by √(mean(x²) + ε), the root mean square about 0, "
             "not by the standard deviation.", lambda: x / np.sqrt(np.var(x, -1, keepdims=True) + eps) * g),
            ("normalised over the wrong axis: the mean is over the last (channel) axis.",
             lambda: x / np.sqrt(np.mean(x * x, 0) + eps) * g),
        ]  # fmt: skip
        _diagnose(got, LL.rms_norm(x, g, None, eps), ins, mistakes, "rms_norm")

    run(prop, inputs(), max_examples)


def check_swiglu(fn: Callable[..., np.ndarray], max_examples: int = 30) -> None:
    """``fn(x, mlp)``: Llama's MLP (SiLU(x W_gate) ⊙ x W_fc) W_proj with ``mlp`` = {"c_gate", "c_fc", "c_proj"},
    each {"weight": (in, out)} (``minigpt.reference.functional.mlp``)."""

    @st.composite
    def inputs(draw):
        C, Fw = draw(st.integers(1, 5)), draw(st.integers(1, 7))
        shapes = {"x": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), C), "c_gate": (C, Fw), "c_fc": (C, Fw)}
        shapes["c_proj"] = (Fw, C)
        x, *weights = _normals(draw, *shapes.values())
        return x, {name: {"weight": w} for name, w in zip(list(shapes)[1:], weights, strict=True)}

    def prop(example):
        x, p = example
        ins = {"x": x, "mlp": p}
        got = call(fn, "swiglu", ins, x.copy(), {k: {"weight": v["weight"].copy()} for k, v in p.items()})
        g, u, down = x @ p["c_gate"]["weight"], x @ p["c_fc"]["weight"], p["c_proj"]["weight"]
        sig = 1 / (1 + np.exp(-g))
        mistakes = [
            ("SiLU went on the up projection (c_fc); it belongs on the gate: SiLU(x W_gate) ⊙ (x W_fc).",
             lambda: (LL.silu(u) * g) @ down),
            ("you used the sigmoid σ(g) as the gate; SwiGLU uses SiLU(g) = g · σ(g).", lambda: (sig * u) @ down),
            ("you used GELU; Llama's gate is SiLU(g) = g · σ(g).", lambda: (F.gelu(g) * u) @ down),
            ("you used ReLU; Llama's gate is SiLU(g) = g · σ(g), smooth and slightly negative below 0.",
             lambda: (np.maximum(g, 0) * u) @ down),
            ("SiLU was applied after multiplying; it acts on the gate alone: SiLU(g) ⊙ u.",
             lambda: LL.silu(g * u) @ down),
            ("the up projection is missing: SiLU(x W_gate) must be multiplied by x W_fc.", lambda: LL.silu(g) @ down),
        ]  # fmt: skip
        _diagnose(got, F.mlp(x, p), ins, mistakes, "swiglu")

    run(prop, inputs(), max_examples)


# -- grouped-query attention ---------------------------------------------------------------------------


_TILED = (
    "key/value heads repeated in the wrong order: query head h reads kv head h // (n_head / n_kv_head) "
    "(kv₀ kv₀ kv₁ kv₁, np.repeat along the head axis), not h % n_kv_head (kv₀ kv₁ kv₀ kv₁, np.tile)."
)


def check_repeat_kv(fn: Callable[[np.ndarray, int], np.ndarray], max_examples: int = 30) -> None:
    """``fn(x, n_rep)``: (B, H_kv, T, d) → (B, H_kv·n_rep, T, d), each kv head repeated n_rep times in a row."""

    @st.composite
    def inputs(draw):
        return _normal(draw, 1, draw(st.integers(1, 3)), 2, 2), draw(st.integers(1, 3))

    def prop(example):
        x, n = example
        ins = {"x": x, "n_rep": n}
        got = call(fn, "repeat_kv", ins, x.copy(), n)
        _diagnose(got, LL.repeat_kv(x, n), ins, [(_TILED, lambda: np.tile(x, (1, n, 1, 1)))], "repeat_kv")

    run(prop, inputs(), max_examples)


def _step(x, attn, H, H_kv, past_k, past_v, theta, pos, *, rotate_v=False, tiled=False):
    """One cached decoding step (the reference's numbers), with one of the classic mistakes planted."""
    q, k, v = F.project_qkv(x, attn, H, H_kv, positions=np.array([pos]), rope_theta=theta)  # (B, H or H_kv, 1, d)
    v = LL.rope(v, np.array([pos]), theta) if rotate_v else v
    k, v = np.concatenate([past_k, k], axis=2), np.concatenate([past_v, v], axis=2)  # (B, H_kv, p+1, d)
    rep = (lambda t: np.tile(t, (1, H // H_kv, 1, 1))) if tiled else (lambda t: LL.repeat_kv(t, H // H_kv))
    out = F.scaled_dot_product_attention(q, rep(k), rep(v))  # the new token attends every slot: no mask
    return F.merge_heads(out) @ attn["c_proj"]["weight"]  # (B, 1, C)


def check_rope_cached_step(fn: Callable[..., np.ndarray], max_examples: int = 30) -> None:
    """``fn(x, attn, n_head, n_kv_head, past_k, past_v, theta)``: one cached decoding step of grouped-query
    attention with RoPE. x (B, 1, C) is the new token; past_k, past_v (B, n_kv_head, p, d) the cache of the p
    tokens before it (p ≥ 2; keys already rotated at positions 0 … p−1). Return its attention output (B, 1, C): q and k
    from ``attn["c_attn"]`` ((C, (H + 2H_kv)·d), columns [Q heads | K heads | V heads]), RoPE on q and k at the
    new token's position, k and v appended to the cache, each kv head shared by its group of query heads, then
    ``attn["c_proj"]`` ((C, C)). The twin of ``minigpt.model``'s cached attention (positions from
    ``KVCache.positions``).
    """

    @st.composite
    def inputs(draw):
        H_kv = draw(st.integers(1, 2))
        H = H_kv * draw(st.integers(1, 3))
        d, p, B = 2 * draw(st.integers(1, 2)), draw(st.integers(2, 6)), draw(st.integers(1, 2))  # p ≥ 2: 0 ≠ p − 1
        C = H * d
        theta = draw(st.sampled_from([10.0, 1e4]))
        w_attn, w_proj, past_k, past_v, x = _normals(
            draw, (C, (H + 2 * H_kv) * d), (C, C), *[(B, H_kv, p, d)] * 2, (B, 1, C)
        )
        attn = {"c_attn": {"weight": w_attn}, "c_proj": {"weight": w_proj}}
        return x, attn, H, H_kv, past_k, past_v, theta

    def prop(example):
        x, attn, H, H_kv, past_k, past_v, theta = example
        ins = {"x": x, "attn": attn, "n_head": H, "n_kv_head": H_kv, "past_k": past_k, "past_v": past_v}
        ins["theta"] = theta
        got = call(fn, "rope_cached_step", ins, x.copy(), attn, H, H_kv, past_k.copy(), past_v.copy(), theta)
        p = past_k.shape[2]
        args = (x, attn, H, H_kv, past_k, past_v, theta)
        off_by_one = (
            "the new token's position is off by one: after p cached tokens it sits at position p (the cache "
            "length before the step, KVCache.positions), not p ± 1."
        )
        mistakes = [
            ("you rotated V too: RoPE turns only q and k (it encodes position in the scores); v stays as projected.",
             lambda: _step(*args, p, rotate_v=True)),
            (_TILED, lambda: _step(*args, p, tiled=True)),
            (off_by_one, lambda: _step(*args, p + 1)),
            (off_by_one, lambda: _step(*args, p - 1)),
            ("the new token was rotated as if at position 0: in a cached step it comes after the p cached "
             "tokens, so its position is p.", lambda: _step(*args, 0)),
        ]  # fmt: skip
        _diagnose(got, _step(*args, p), ins, mistakes, "rope_cached_step")

    run(prop, inputs(), max_examples)
