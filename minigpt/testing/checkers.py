"""Checkers for course assignments: a student's function against the reference, with a diagnosis.

Each ``check_*`` runs the student's function on hypothesis-drawn inputs (derandomized, so every
student sees the same examples), compares it with ``minigpt.reference`` in float64 and, on the
first mismatch, lets hypothesis shrink the input to the smallest one that still fails. The
``AssertionError`` says what is wrong in words, found by matching the student's output against a
zoo of known mistakes (softmax over the wrong axis, no 1/√d_k, heads split in the wrong order, …),
and shows that smallest input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.config import GPTConfig
from minigpt.reference import functional as F
from minigpt.reference import model as M
from minigpt.testing import context
from minigpt.testing.diagnosis import Mistake, arrays, call, compare, describe, generator, run
from minigpt.testing.strategies import configs, seeds

# -- softmax ---------------------------------------------------------------------------------------


def _softmax_no_max(x: np.ndarray) -> np.ndarray:
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def check_softmax(fn: Callable[[np.ndarray], np.ndarray], max_examples: int = 50) -> None:
    """``fn(x)`` must return softmax over the last axis of x (any shape), stable for large inputs."""

    @st.composite
    def inputs(draw):
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        return arrays(draw, shape, draw(st.sampled_from([1.0, 5.0, 1000.0])))

    def prop(x):
        ins = {"x": x}
        got = call(fn, "softmax", ins, x.copy())
        wrong_axis = "softmax taken over the wrong axis: each row along the LAST axis must sum to 1."
        compare(
            got,
            F.softmax(x),
            ins,
            [(wrong_axis, lambda a=axis: F.softmax(x, axis=a)) for axis in range(x.ndim - 1)]
            + [
                ("you exponentiated but did not divide by the sum of exponentials.", lambda: np.exp(x)),
                (
                    "you exponentiated but did not divide by the sum of exponentials.",
                    lambda: np.exp(x - x.max(-1, keepdims=True)),
                ),
            ],
            what="softmax",
        )

    run(prop, inputs(), max_examples)


# -- layer norm ------------------------------------------------------------------------------------


def check_layer_norm(fn: Callable[..., np.ndarray], max_examples: int = 50) -> None:
    """``fn(x, weight, bias, eps)`` must return (x − μ)/√(σ² + ε)·γ + β over the last axis (biased σ²)."""

    @st.composite
    def inputs(draw):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 8)))
        x = arrays(draw, shape) * 3 + 1
        g, b = arrays(draw, (shape[-1],)) + 1, arrays(draw, (shape[-1],))
        return x, g, b, draw(st.sampled_from([1e-5, 0.1, 1.0]))

    def prop(example):
        x, g, b, eps = example
        ins = {"x": x, "weight": g, "bias": b, "eps": eps}
        got = call(fn, "layer_norm", ins, x.copy(), g.copy(), b.copy(), eps)
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        compare(
            got,
            F.layer_norm(x, g, b, eps),
            ins,
            [
                (
                    "you used the unbiased variance (÷(C−1)); LayerNorm divides by C.",
                    lambda: (x - mu) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) * g + b,
                ),
                (
                    "ε belongs inside the square root: √(σ² + ε), not √σ² + ε.",
                    lambda: (x - mu) / (np.sqrt(var) + eps) * g + b,
                ),
                ("the gain γ (weight) and bias β were not applied.", lambda: (x - mu) / np.sqrt(var + eps)),
                (
                    "normalised over the wrong axis: statistics are taken over the last (channel) axis.",
                    lambda: (x - x.mean(0)) / np.sqrt(x.var(0) + eps) * g + b,
                ),
            ],
            what="layer_norm",
        )

    run(prop, inputs(), max_examples)


# -- attention -------------------------------------------------------------------------------------


def _attn(q, k, v, mask, *, scale=None, axis=-1, apply_mask=True):
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / (math.sqrt(d_k) if scale is None else scale)
    if mask is not None and apply_mask:
        scores = scores + mask
    return F.softmax(scores, axis=axis) @ v


def check_attention(fn: Callable[..., np.ndarray], max_examples: int = 50) -> None:
    """``fn(q, k, v, mask)`` must return softmax(QKᵀ/√d_k + mask)V; mask is additive (0 / −∞) or None."""

    @st.composite
    def inputs(draw):
        B, T, d_k, d_v = (draw(st.integers(1, n)) for n in (2, 6, 6, 5))
        T = max(T, 2)
        d_k = max(d_k, 2)
        q, k, v = arrays(draw, (B, T, d_k), 2.0), arrays(draw, (B, T, d_k), 2.0), arrays(draw, (B, T, d_v))
        return q, k, v, draw(st.booleans())

    def prop(example):
        q, k, v, causal = example
        T, d_k = q.shape[1], q.shape[-1]
        mask = F.causal_mask(T, q.dtype) if causal else None
        ins = {"q": q, "k": k, "v": v, "mask": mask}
        got = call(fn, "attention", ins, q.copy(), k.copy(), v.copy(), None if mask is None else mask.copy())
        compare(
            got,
            F.scaled_dot_product_attention(q, k, v, mask),
            ins,
            [
                ("your weights are not scaled by 1/√d_k (scores = QKᵀ/√d_k).", lambda: _attn(q, k, v, mask, scale=1.0)),
                ("you scaled by 1/d_k; the scale is 1/√d_k.", lambda: _attn(q, k, v, mask, scale=d_k)),
                (
                    "softmax taken over the wrong axis: normalise over the keys (last axis), so each query's "
                    "weights sum to 1.",
                    lambda: _attn(q, k, v, mask, axis=-2),
                ),
                (
                    "position t attends to the future: the mask was not added to the scores before the softmax.",
                    lambda: _attn(q, k, v, mask, apply_mask=False),
                ),
                (
                    "the weights multiply V from the wrong side or K is not transposed (scores must be QKᵀ).",
                    lambda: (
                        F.softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(d_k) + (0 if mask is None else mask))
                        @ v[..., ::-1, :]
                    ),
                ),
            ],
            what="attention",
        )

    run(prop, inputs(), max_examples)


def check_causal_mask(fn: Callable[[int], np.ndarray], max_examples: int = 20) -> None:
    """``fn(T)`` must return the additive causal mask: 0 on and below the diagonal, −∞ above it."""

    def prop(T):
        ins = {"T": T}
        got = np.asarray(call(fn, "causal_mask", ins, T), dtype=float)
        want = F.causal_mask(T, np.float64)
        if got.shape != want.shape:
            raise AssertionError(f"causal_mask: shape {got.shape}, expected {want.shape}.\n" + describe(ins))
        above, on_below = np.triu(np.ones((T, T), bool), 1), np.tril(np.ones((T, T), bool))
        if np.any(got[on_below] != 0):
            raise AssertionError(
                "causal_mask: position t must see itself and the past (0 on and below the diagonal); your mask "
                "blocks some of them — did you mask the wrong triangle?\n" + describe(ins)
            )
        if T > 1 and not np.all(np.isneginf(got[above])):
            value = got[above][~np.isneginf(got[above])][0]
            raise AssertionError(
                f"causal_mask: position t attends to the future — above the diagonal your mask holds {value:g}; "
                "use -np.inf so that softmax gives those positions exactly zero weight.\n" + describe(ins)
            )

    run(prop, st.integers(1, 12), max_examples)


# -- multi-head attention --------------------------------------------------------------------------


def _mha(x, attn, n_head, *, split="ok", mask_value=-np.inf, scale="d_k", transpose_proj=False):
    B, T, C = x.shape
    d = C // n_head
    qkv = x @ attn["c_attn"]["weight"] + attn["c_attn"]["bias"]

    def heads(t):
        if split == "interleaved":  # channel c goes to head c % H instead of c // d
            return t.reshape(B, T, d, n_head).transpose(0, 3, 1, 2)
        if split == "reshape":  # (B, T, C) reshaped straight to (B, H, T, d): mixes time and heads
            return t.reshape(B, n_head, T, d)
        return t.reshape(B, T, n_head, d).transpose(0, 2, 1, 3)

    q, k, v = (heads(t) for t in np.split(qkv, 3, axis=-1))
    s = {"d_k": math.sqrt(d), "C": math.sqrt(C), "none": 1.0}[scale]
    scores = q @ np.swapaxes(k, -1, -2) / s + np.where(np.triu(np.ones((T, T), bool), 1), mask_value, 0.0)
    y = F.softmax(scores) @ v
    if split == "interleaved":
        y = y.transpose(0, 2, 3, 1).reshape(B, T, C)
    elif split == "reshape":
        y = y.reshape(B, T, C)
    else:
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
    w = attn["c_proj"]["weight"]
    return y @ (w.T if transpose_proj else w) + attn["c_proj"]["bias"]


def check_multi_head_attention(fn: Callable[..., np.ndarray], max_examples: int = 40) -> None:
    """``fn(x, attn, n_head)`` must return causal Concat(head_1..head_H)Wᴼ (see reference.multi_head_attention).

    ``attn`` = {"c_attn": {"weight": (C, 3C), "bias": (3C,)}, "c_proj": {"weight": (C, C), "bias": (C,)}}.
    """

    @st.composite
    def inputs(draw):
        H = draw(st.integers(2, 3))
        d = draw(st.integers(2, 4))
        C, T, B = H * d, draw(st.integers(2, 5)), draw(st.integers(1, 2))
        attn = {
            "c_attn": {"weight": arrays(draw, (C, 3 * C), 0.5), "bias": arrays(draw, (3 * C,), 0.1)},
            "c_proj": {"weight": arrays(draw, (C, C), 0.5), "bias": arrays(draw, (C,), 0.1)},
        }
        return arrays(draw, (B, T, C)), attn, H

    def prop(example):
        x, attn, H = example
        ins = {"x": x, "attn": attn, "n_head": H}
        copy = {p: {n: a.copy() for n, a in d.items()} for p, d in attn.items()}
        got = call(fn, "multi_head_attention", ins, x.copy(), copy, H)
        compare(
            got,
            F.multi_head_attention(x, attn, H),
            ins,
            [
                (
                    "heads split in the wrong order: head h owns channels h·d_k … (h+1)·d_k−1, so reshape "
                    "(B, T, C) → (B, T, H, d_k) and then transpose to (B, H, T, d_k).",
                    lambda: _mha(x, attn, H, split="interleaved"),
                ),
                (
                    "heads split in the wrong order: reshaping (B, T, C) straight to (B, H, T, d_k) mixes "
                    "positions and heads; reshape to (B, T, H, d_k) and then transpose to (B, H, T, d_k).",
                    lambda: _mha(x, attn, H, split="reshape"),
                ),
                ("position t attends to the future: apply the causal mask.", lambda: _mha(x, attn, H, mask_value=0.0)),
            ]
            + [
                (
                    f"position t attends to the future a little: the mask adds {m:g} above the diagonal, which "
                    "leaves future positions some weight; use -np.inf.",
                    lambda m=m: _mha(x, attn, H, mask_value=m),
                )
                for m in (-1.0, -10.0, -100.0)
            ]
            + [
                ("your weights are not scaled by 1/√d_k.", lambda: _mha(x, attn, H, scale="none")),
                (
                    "scaled by 1/√C; use the head size: 1/√d_k with d_k = C / n_head.",
                    lambda: _mha(x, attn, H, scale="C"),
                ),
                (
                    "a weight is transposed: weights are stored (in, out), so compute x @ W (not x @ W.T).",
                    lambda: _mha(x, attn, H, transpose_proj=True),
                ),
            ],
            what="multi_head_attention",
        )

    run(prop, inputs(), max_examples)


# -- whole model -----------------------------------------------------------------------------------


def _gpt_variant(params, idx, cfg, *, skip_attn_residual=False, skip_mlp_residual=False, no_ln_f=False, no_wpe=False):
    x = params["wte"]["weight"][idx] + (0 if no_wpe else params["wpe"]["weight"][: idx.shape[1]])
    for p in params["h"]:
        a = F.multi_head_attention(
            F.layer_norm(x, p["ln_1"]["weight"], p["ln_1"]["bias"], cfg.layer_norm_eps), p["attn"], cfg.n_head
        )
        x = a if skip_attn_residual else x + a
        m = F.mlp(F.layer_norm(x, p["ln_2"]["weight"], p["ln_2"]["bias"], cfg.layer_norm_eps), p["mlp"])
        x = m if skip_mlp_residual else x + m
    if not no_ln_f:
        x = F.layer_norm(x, params["ln_f"]["weight"], params["ln_f"]["bias"], cfg.layer_norm_eps)
    return x @ params["wte"]["weight"].T


def _perturbed(cfg: GPTConfig, seed: int) -> dict:
    params = M.init_params(cfg, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    from minigpt.params import map_params

    return map_params(lambda a: a + 0.1 * rng.standard_normal(a.shape), params)


def check_gpt_forward(fn: Callable[..., np.ndarray], max_examples: int = 25) -> None:
    """``fn(params, idx, cfg)`` must return the GPT logits (B, T, V) (see reference.forward)."""

    @st.composite
    def inputs(draw):
        cfg = draw(configs(max_layers=2, max_heads=2, max_head_size=4, max_vocab=20, max_block=6, bias=True))
        cfg = cfg.replace(block_size=max(cfg.block_size, 2), n_embd=max(cfg.n_embd, 2 * cfg.n_head))
        T = draw(st.integers(2, cfg.block_size))
        idx = generator(draw).integers(0, cfg.vocab_size, (draw(st.integers(1, 2)), T))
        return _perturbed(cfg, draw(seeds())), idx, cfg

    def prop(example):
        params, idx, cfg = example
        ins = {"idx": idx, "cfg": cfg, "params": params}
        from minigpt.params import map_params

        got = call(fn, "gpt_forward", ins, map_params(np.copy, params), idx.copy(), cfg)
        compare(
            got,
            M.forward(params, idx, cfg),
            ins,
            [
                (
                    "missing residual connection around attention: x = x + attn(ln_1(x)).",
                    lambda: _gpt_variant(params, idx, cfg, skip_attn_residual=True),
                ),
                (
                    "missing residual connection around the MLP: x = x + mlp(ln_2(x)).",
                    lambda: _gpt_variant(params, idx, cfg, skip_mlp_residual=True),
                ),
                (
                    "the final LayerNorm ln_f is missing before the lm head.",
                    lambda: _gpt_variant(params, idx, cfg, no_ln_f=True),
                ),
                (
                    "the position embedding wpe is missing: x = wte[idx] + wpe[:T].",
                    lambda: _gpt_variant(params, idx, cfg, no_wpe=True),
                ),
            ],
            what="gpt_forward",
            rtol=1e-6,
            atol=1e-8,
        )
        # causality, separately: changing the last token must not move earlier logits
        changed = idx.copy()
        changed[:, -1] = (changed[:, -1] + 1) % cfg.vocab_size
        again = np.asarray(call(fn, "gpt_forward", ins, map_params(np.copy, params), changed, cfg))
        if not np.allclose(again[:, :-1], np.asarray(got)[:, :-1], rtol=1e-9, atol=1e-12):
            raise AssertionError("gpt_forward: position t attends to the future.\n" + describe(ins))

    run(prop, inputs(), max_examples)


# -- loss ------------------------------------------------------------------------------------------


def check_loss(fn: Callable[..., Any], max_examples: int = 50) -> None:
    """``fn(logits, targets, ignore_index=-1)`` must return the mean of −log softmax(logits)[target]
    over the targets that are not ``ignore_index`` (see reference.cross_entropy)."""

    @st.composite
    def inputs(draw):
        B, T, V = draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 7))
        logits = arrays(draw, (B, T, V), draw(st.sampled_from([1.0, 3.0, 100.0])))
        targets = generator(draw).integers(0, V, (B, T))
        ignore = generator(draw).random((B, T)) < draw(st.sampled_from([0.0, 0.3]))
        ignore.flat[0] = False
        return logits, np.where(ignore, -1, targets)

    def prop(example):
        logits, targets = example
        ins = {"logits": logits, "targets": targets}
        got = call(fn, "loss", ins, logits.copy(), targets.copy(), -1)
        keep = targets != -1
        logp = F.log_softmax(logits)
        nll = -np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], -1)[..., 0] * keep
        compare(
            np.asarray(got, dtype=np.float64).reshape(()),
            np.asarray(M.cross_entropy(logits, targets, -1)),
            ins,
            [
                (
                    "the loss is the NEGATIVE log-likelihood: you forgot the minus sign.",
                    lambda: -nll.sum() / keep.sum(),
                ),
                ("you summed the token losses; take the mean over the non-ignored tokens.", lambda: nll.sum()),
                (
                    "positions with target == ignore_index were counted in the mean; divide by the number of kept "
                    "tokens only.",
                    lambda: nll.sum() / nll.size,
                ),
                (
                    "softmax taken over the wrong axis: the distribution is over the vocabulary (last axis).",
                    lambda: _loss_wrong_axis(logits, targets, keep),
                ),
            ],
            what="loss",
        )

    def _loss_wrong_axis(logits, targets, keep):
        logp = F.log_softmax(logits, axis=1)
        return -(np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], -1)[..., 0] * keep).sum() / keep.sum()

    run(prop, inputs(), max_examples)


# -- backward of one layer -------------------------------------------------------------------------

# per layer: the names of the inputs that get a gradient, the arrays the student's function returns
BACKWARD_LAYERS = {
    "linear": "fn(dy, x, weight, bias) -> (dx, dweight, dbias)",
    "layer_norm": "fn(dy, x, weight, bias, eps) -> (dx, dweight, dbias)",
    "gelu": "fn(dy, x) -> dx",
    "softmax": "fn(dy, y) -> dx   (y = softmax(x) over the last axis)",
    "attention": "fn(dout, q, k, v, mask) -> (dq, dk, dv)   (mask additive (T, T) or None)",
}


def _finite_differences(f: Callable[..., np.ndarray], args: list, wrt: int, dy: np.ndarray, eps: float = 1e-6):
    """∂L/∂args[wrt] for L = Σ dy ⊙ f(*args), entry by entry: (L(a + εe_i) − L(a − εe_i)) / 2ε (float64)."""
    a = args[wrt]
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        vals = []
        for sign in (1.0, -1.0):
            bumped = a.copy()
            bumped[i] += sign * eps
            vals.append(float(np.sum(dy * f(*args[:wrt], bumped, *args[wrt + 1 :]))))
        grad[i] = (vals[0] - vals[1]) / (2 * eps)
    return grad


def _compare_grad(
    got: Any,
    want: np.ndarray,
    fd: np.ndarray,
    inputs: dict[str, Any],
    mistakes: list[Mistake],
    *,
    what: str,
    shape_hints: list[tuple[tuple[int, ...], str]] = (),
) -> None:
    """``compare`` for a gradient: shape mistakes named first; an undiagnosed mismatch also shows what finite
    differences (the slope of L = Σ dy ⊙ f measured numerically) give, so the student sees an independent answer."""
    got = np.asarray(got)
    if got.shape != want.shape:
        for shape, message in shape_hints:
            if got.shape == shape:
                raise AssertionError(f"{what}: {message}\nSmallest failing input:\n{describe(inputs)}")
    try:
        compare(got, want, inputs, mistakes, what=what, rtol=1e-6, atol=1e-9)
    except AssertionError as e:
        message = str(e)
        if "differs from the reference" in message and context.current().reveal:
            err = np.abs(got - want)
            where = np.unravel_index(np.nanargmax(err), err.shape)
            head, _, tail = message.partition("\nSmallest failing input:")
            message = f"{head} Finite differences give {fd[where]:.6g} there.\nSmallest failing input:{tail}"
        raise AssertionError(message) from None


def _grads_tuple(got: Any, names: tuple[str, ...], what: str, inputs: dict[str, Any]) -> tuple:
    if len(names) == 1:
        return (got,)
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        n = len(got) if isinstance(got, (tuple, list)) else 1
        raise AssertionError(
            f"{what}: return {len(names)} arrays ({', '.join(names)}) in that order; yours returned {n}.\n"
            f"On input:\n{describe(inputs)}"
        )
    return tuple(got)


def _check_against(
    grads: tuple,
    wants: tuple,
    f: Callable[..., np.ndarray],
    args: list,
    dy: np.ndarray,
    names: tuple[str, ...],
    inputs: dict[str, Any],
    mistakes: dict[str, list[Mistake]],
    shape_hints: dict[str, list],
    layer: str,
) -> None:
    for wrt, (name, got, want) in enumerate(zip(names, grads, wants, strict=True)):
        fd = _finite_differences(f, args, wrt, dy)
        # the reference itself is checked against finite differences on every input (never expected to fire)
        if not np.allclose(want, fd, rtol=1e-5, atol=1e-7):
            raise RuntimeError(f"reference {layer} backward disagrees with finite differences for {name}")
        _compare_grad(
            got,
            want,
            fd,
            inputs,
            mistakes.get(name, []),
            what=f"{layer} backward, {name}",
            shape_hints=shape_hints.get(name, []),
        )


def check_layer_backward(fn: Callable[..., Any], layer: str, max_examples: int = 30) -> None:
    """Check a hand-written backward pass for one layer against ``reference.functional_backward`` and against
    finite differences of the forward. ``dy`` is ∂L/∂(layer output); the function returns ∂L/∂(each input):

    - ``"linear"``:     ``fn(dy, x, weight, bias) -> (dx, dweight, dbias)`` for y = x W + b, W (in, out)
    - ``"layer_norm"``: ``fn(dy, x, weight, bias, eps) -> (dx, dweight, dbias)`` over the last axis
    - ``"gelu"``:       ``fn(dy, x) -> dx`` (GPT-2's tanh GELU)
    - ``"softmax"``:    ``fn(dy, y) -> dx`` given the forward's output y = softmax(x) over the last axis
    - ``"attention"``:  ``fn(dout, q, k, v, mask) -> (dq, dk, dv)`` for softmax(QKᵀ/√d_k + M)V
    """
    if layer not in BACKWARD_LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(BACKWARD_LAYERS)}")
    prop, strategy = {
        "linear": _linear_backward_check,
        "layer_norm": _layer_norm_backward_check,
        "gelu": _gelu_backward_check,
        "softmax": _softmax_backward_check,
        "attention": _attention_backward_check,
    }[layer](fn)
    run(prop, strategy, max_examples)


def _linear_backward_check(fn):
    from minigpt.reference import functional_backward as FB

    @st.composite
    def inputs(draw):
        B, T, n_in, n_out = (draw(st.integers(1, n)) for n in (2, 3, 4, 4))
        n_in = max(n_in, 2)
        return (
            arrays(draw, (B, T, n_out)),
            arrays(draw, (B, T, n_in)),
            arrays(draw, (n_in, n_out)),
            arrays(draw, (n_out,)),
        )

    def prop(example):
        dy, x, w, b = example
        ins = {"dy": dy, "x": x, "weight": w, "bias": b}
        names = ("dx", "dweight", "dbias")
        got = _grads_tuple(
            call(fn, "linear backward", ins, dy.copy(), x.copy(), w.copy(), b.copy()), names, "linear backward", ins
        )
        want = FB.linear_backward(dy, (x, w, True))
        sum_bias = (
            "the bias gradient must be summed over batch and time: ∂L/∂b = Σ_{b,t} dy[b, t] "
            "(b is used at every position)."
        )
        sum_w = "the weight gradient must be summed over batch and time: ∂L/∂W = Σ_{b,t} x[b, t]ᵀ dy[b, t]."
        _check_against(
            got,
            want,
            lambda x_, w_, b_: x_ @ w_ + b_,
            [x, w, b],
            dy,
            names,
            ins,
            {
                "dx": [("∂L/∂x = dy Wᵀ: you multiplied by W instead of its transpose.", lambda: dy @ w)],
                "dweight": [
                    ("your weight gradient is transposed: ∂L/∂W = xᵀ dy has W's shape (in, out).", lambda: want[1].T),
                    (sum_w + " You averaged instead of summing.", lambda: want[1] / (x.shape[0] * x.shape[1])),
                    (sum_w + " You used the first batch row only.", lambda: x[0].T @ dy[0]),
                ],
                "dbias": [
                    (sum_bias + " You averaged instead of summing.", lambda: dy.mean(axis=(0, 1))),
                    (sum_bias + " You summed over time only for the first batch row.", lambda: dy[0].sum(0)),
                ],
            },
            {
                "dweight": [
                    (
                        (w.shape[1], w.shape[0]),
                        "your weight gradient is transposed: ∂L/∂W = xᵀ dy has W's shape (in, out).",
                    ),
                    (x.shape[:2] + w.shape, sum_w),
                ],
                "dbias": [(dy.shape, sum_bias), (dy.shape[1:], sum_bias), (dy.shape[::2], sum_bias)],
            },
            "linear",
        )

    return prop, inputs()


def _layer_norm_backward_check(fn):
    from minigpt.reference import functional_backward as FB

    @st.composite
    def inputs(draw):
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(2, 5)))
        C = shape[-1]
        return (
            arrays(draw, shape),
            arrays(draw, shape) * 2 + 0.5,
            arrays(draw, (C,)) + 1,
            arrays(draw, (C,)),
            draw(st.sampled_from([1e-5, 0.1])),
        )

    def prop(example):
        dy, x, g, b, eps = example
        ins = {"dy": dy, "x": x, "weight": g, "bias": b, "eps": eps}
        names = ("dx", "dweight", "dbias")
        got = call(fn, "layer_norm backward", ins, dy.copy(), x.copy(), g.copy(), b.copy(), eps)
        got = _grads_tuple(got, names, "layer_norm backward", ins)
        want = FB.layer_norm_backward(dy, (x, g, True, eps))
        mu = x.mean(-1, keepdims=True)
        sigma = np.sqrt(x.var(-1, keepdims=True) + eps)
        xhat = (x - mu) / sigma
        gg = dy * g
        C = x.shape[-1]

        def mean(a):
            return a.mean(-1, keepdims=True)

        summed = "must be summed over batch and time (γ and β are used at every position)."
        _check_against(
            got,
            want,
            lambda x_, g_, b_: F.layer_norm(x_, g_, b_, eps),
            [x, g, b],
            dy,
            names,
            ins,
            {
                "dx": [
                    (
                        "you forgot both mean terms of LayerNorm's gradient: μ and σ depend on every x_j of the row, "
                        "so ∂L/∂x = (g − mean(g) − x̂·mean(g·x̂))/σ with g = dy·γ, not just g/σ.",
                        lambda: gg / sigma,
                    ),
                    (
                        "you forgot the mean term −mean(g) of LayerNorm's gradient (it comes from μ depending on x): "
                        "∂L/∂x = (g − mean(g) − x̂·mean(g·x̂))/σ with g = dy·γ.",
                        lambda: (gg - xhat * mean(gg * xhat)) / sigma,
                    ),
                    (
                        "you forgot the term −x̂·mean(g·x̂) of LayerNorm's gradient (it comes from σ depending on x): "
                        "∂L/∂x = (g − mean(g) − x̂·mean(g·x̂))/σ with g = dy·γ.",
                        lambda: (gg - mean(gg)) / sigma,
                    ),
                    (
                        "the gain γ is missing from ∂L/∂x: the normalised x̂ is multiplied by γ, so use g = dy·γ.",
                        lambda: (dy - mean(dy) - xhat * mean(dy * xhat)) / sigma,
                    ),
                    (
                        "divide by σ = √(var + ε), not by var + ε.",
                        lambda: (gg - mean(gg) - xhat * mean(gg * xhat)) / sigma**2,
                    ),
                ],
                "dweight": [
                    ("∂L/∂γ = Σ dy·x̂ (the normalised input), not Σ dy·x.", lambda: (dy * x).reshape(-1, C).sum(0)),
                    ("∂L/∂γ = Σ dy·x̂; you returned Σ dy, which is ∂L/∂β.", lambda: dy.reshape(-1, C).sum(0)),
                    ("∂L/∂γ " + summed + " You averaged.", lambda: (dy * xhat).reshape(-1, C).mean(0)),
                ],
                "dbias": [("∂L/∂β " + summed + " You averaged.", lambda: dy.reshape(-1, C).mean(0))],
            },
            {
                "dweight": [(x.shape, "∂L/∂γ " + summed), (x.shape[1:], "∂L/∂γ " + summed)],
                "dbias": [(x.shape, "∂L/∂β " + summed), (x.shape[1:], "∂L/∂β " + summed)],
            },
            "layer_norm",
        )

    return prop, inputs()


def _gelu_backward_check(fn):
    from minigpt.reference import functional_backward as FB

    @st.composite
    def inputs(draw):
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        return arrays(draw, shape), arrays(draw, shape, draw(st.sampled_from([1.0, 3.0])))

    def prop(example):
        dy, x = example
        ins = {"dy": dy, "x": x}
        got = call(fn, "gelu backward", ins, dy.copy(), x.copy())
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        du = c * (1.0 + 3.0 * 0.044715 * x**2)
        erf = np.vectorize(math.erf)
        _check_against(
            (got,),
            (FB.gelu_backward(dy, x),),
            F.gelu,
            [x],
            dy,
            ("dx",),
            ins,
            {
                "dx": [
                    (
                        "you returned GELU'(x) but forgot to multiply by the upstream gradient: ∂L/∂x = dy ⊙ GELU'(x).",
                        lambda: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du,
                    ),
                    (
                        "product rule: GELU(x) = ½x(1 + tanh u) has a second term ½x(1 − tanh²u)·u' that is missing.",
                        lambda: dy * 0.5 * (1 + t),
                    ),
                    (
                        "chain rule through u = √(2/π)(x + 0.044715x³): the factor u' = √(2/π)(1 + 3·0.044715x²) "
                        "is missing.",
                        lambda: dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t)),
                    ),
                    (
                        "that is the derivative of the exact GELU x·Φ(x); GPT-2 uses the tanh approximation "
                        "½x(1 + tanh(√(2/π)(x + 0.044715x³))).",
                        lambda: (
                            dy * (0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
                        ),
                    ),
                ]
            },
            {},
            "gelu",
        )

    return prop, inputs()


def _softmax_backward_check(fn):
    from minigpt.reference import functional_backward as FB

    @st.composite
    def inputs(draw):
        shape = tuple(draw(st.lists(st.integers(2, 4), min_size=2, max_size=3)))
        return arrays(draw, shape), arrays(draw, shape, 2.0)

    def prop(example):
        dy, x = example
        y = F.softmax(x)
        ins = {"dy": dy, "y": y}
        got = call(fn, "softmax backward", ins, dy.copy(), y.copy())
        jacobian = "∂y_i/∂x_j = y_i(δ_ij − y_j), so ∂L/∂x = y ⊙ (dy − Σ_j dy_j y_j)"
        _check_against(
            (got,),
            (FB.softmax_backward(dy, y),),
            F.softmax,
            [x],
            dy,
            ("dx",),
            {"dy": dy, "y": y, "(x, the softmax input)": x},
            {
                "dx": [
                    (
                        "the softmax Jacobian is missing the −p pᵀ term (every output depends on every input): "
                        f"{jacobian}.",
                        lambda: y * dy,
                    ),
                    (
                        f"the sum Σ_j dy_j y_j runs over the wrong axis; use the last axis: {jacobian}.",
                        lambda: y * (dy - np.sum(dy * y, axis=0, keepdims=True)),
                    ),
                    (
                        f"the factor y in front is missing: {jacobian}.",
                        lambda: dy - np.sum(dy * y, axis=-1, keepdims=True),
                    ),
                    (f"wrong sign: {jacobian}.", lambda: y * (np.sum(dy * y, axis=-1, keepdims=True) - dy)),
                    (
                        f"Σ_j dy_j y_j is a sum over the row, not a mean: {jacobian}.",
                        lambda: y * (dy - np.mean(dy * y, axis=-1, keepdims=True)),
                    ),
                ]
            },
            {},
            "softmax",
        )

    return prop, inputs()


def _attention_backward_check(fn):
    from minigpt.reference import functional_backward as FB

    @st.composite
    def inputs(draw):
        B, T, d_k, d_v = (
            draw(st.integers(1, 2)),
            draw(st.integers(2, 4)),
            draw(st.integers(2, 3)),
            draw(st.integers(1, 3)),
        )
        q, k, v = arrays(draw, (B, T, d_k)), arrays(draw, (B, T, d_k)), arrays(draw, (B, T, d_v))
        return arrays(draw, (B, T, d_v)), q, k, v, draw(st.booleans())

    def prop(example):
        dout, q, k, v, causal = example
        T, d_k = q.shape[1], q.shape[-1]
        mask = F.causal_mask(T, q.dtype) if causal else None
        ins = {"dout": dout, "q": q, "k": k, "v": v, "mask": mask}
        names = ("dq", "dk", "dv")
        got = call(
            fn,
            "attention backward",
            ins,
            dout.copy(),
            q.copy(),
            k.copy(),
            v.copy(),
            None if mask is None else mask.copy(),
        )
        got = _grads_tuple(got, names, "attention backward", ins)
        _, cache = FB.scaled_dot_product_attention_forward(q, k, v, mask)
        want = FB.scaled_dot_product_attention_backward(dout, cache)
        A = cache[3]
        s = math.sqrt(d_k)
        dA = dout @ np.swapaxes(v, -1, -2)  # (B, T, T)
        dS = FB.softmax_backward(dA, A)
        dS_no_jac = A * dA
        A_nomask = F.softmax(q @ np.swapaxes(k, -1, -2) / s)
        dS_nomask = FB.softmax_backward(dA, A_nomask)
        no_mask = (
            "your backward recomputes the attention weights without the mask: position t then sends gradient "
            "to the future."
        )
        no_jac = "the softmax Jacobian is missing the −p pᵀ term: ∂L/∂S = A ⊙ (∂L/∂A − rowsum(∂L/∂A ⊙ A))."
        no_scale = (
            "the 1/√d_k of the scores is missing from the gradient: ∂L/∂Q = (∂L/∂S) K / √d_k, "
            "∂L/∂K = (∂L/∂S)ᵀ Q / √d_k."
        )
        _check_against(
            got,
            want,
            lambda q_, k_, v_: F.scaled_dot_product_attention(q_, k_, v_, mask),
            [q, k, v],
            dout,
            names,
            ins,
            {
                "dq": [
                    (no_scale, lambda: dS @ k),
                    (no_jac, lambda: dS_no_jac @ k / s),
                    (no_mask, lambda: dS_nomask @ k / s),
                ],
                "dk": [
                    (no_scale, lambda: np.swapaxes(dS, -1, -2) @ q),
                    ("∂L/∂K = (∂L/∂S)ᵀ Q / √d_k: you forgot to transpose ∂L/∂S.", lambda: dS @ q / s),
                    (no_jac, lambda: np.swapaxes(dS_no_jac, -1, -2) @ q / s),
                    (no_mask, lambda: np.swapaxes(dS_nomask, -1, -2) @ q / s),
                ],
                "dv": [
                    ("∂L/∂V = Aᵀ dO: you forgot to transpose the attention weights A.", lambda: A @ dout),
                    (no_mask, lambda: np.swapaxes(A_nomask, -1, -2) @ dout),
                ],
            },
            {},
            "attention",
        )

    return prop, inputs()


from minigpt.testing.llama_checkers import *  # noqa: E402, F401, F403 - the Llama checkers (see there)
from minigpt.testing.lora_checkers import check_lora  # noqa: E402, F401 - the LoRA checker (see there)
