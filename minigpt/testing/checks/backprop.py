"""Checkers for lesson 04, backpropagation by hand: one layer's backward pass at a time (linear, LayerNorm,
GELU, softmax, attention), against ``minigpt.reference.functional_backward`` and finite differences."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import functional as F
from minigpt.reference import functional_backward as FB
from minigpt.testing.checks.diagnosis import arrays, call, run
from minigpt.testing.checks.gradients import check_against, grads_tuple

# -- backward of one layer -------------------------------------------------------------------------

# per layer: the names of the inputs that get a gradient, the arrays the student's function returns
BACKWARD_LAYERS = {
    "linear": "fn(dy, x, weight, bias) -> (dx, dweight, dbias)",
    "layer_norm": "fn(dy, x, weight, bias, eps) -> (dx, dweight, dbias)",
    "gelu": "fn(dy, x) -> dx",
    "softmax": "fn(dy, y) -> dx   (y = softmax(x) over the last axis)",
    "attention": "fn(dout, q, k, v, mask) -> (dq, dk, dv)   (mask additive (T, T) or None)",
}


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
        got = grads_tuple(
            call(fn, "linear backward", ins, dy.copy(), x.copy(), w.copy(), b.copy()), names, "linear backward", ins
        )
        want = FB.linear_backward(dy, (x, w, True))
        sum_bias = (
            "the bias gradient must be summed over batch and time: ∂L/∂b = Σ_{b,t} dy[b, t] "
            "(b is used at every position)."
        )
        sum_w = "the weight gradient must be summed over batch and time: ∂L/∂W = Σ_{b,t} x[b, t]ᵀ dy[b, t]."
        check_against(
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
        got = grads_tuple(got, names, "layer_norm backward", ins)
        want = FB.layer_norm_backward(dy, (x, g, True, eps))
        mu = x.mean(-1, keepdims=True)
        sigma = np.sqrt(x.var(-1, keepdims=True) + eps)
        xhat = (x - mu) / sigma
        gg = dy * g
        C = x.shape[-1]

        def mean(a):
            return a.mean(-1, keepdims=True)

        summed = "must be summed over batch and time (γ and β are used at every position)."
        check_against(
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
        check_against(
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
        check_against(
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
        got = grads_tuple(got, names, "attention backward", ins)
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
        check_against(
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
