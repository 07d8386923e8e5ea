"""The course checkers: correct implementations pass, each classic mistake is named."""

import math

import numpy as np
import pytest

from minigpt import reference as ref
from minigpt.testing import checkers as C

# -- student implementations: correct ones, written independently of the reference -------------


def good_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def good_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def good_attention(q, k, v, mask):
    s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + mask
    return good_softmax(s) @ v


def good_mha(x, attn, n_head, *, mask_value=-np.inf, split="ok", scale=None, transpose=False):
    B, T, Ch = x.shape
    d = Ch // n_head
    q, k, v = np.split(x @ attn["c_attn"]["weight"] + attn["c_attn"]["bias"], 3, axis=-1)
    if split == "ok":
        q, k, v = (t.reshape(B, T, n_head, d).transpose(0, 2, 1, 3) for t in (q, k, v))
    else:  # the classic bug: reshape straight to (B, H, T, d)
        q, k, v = (t.reshape(B, n_head, T, d) for t in (q, k, v))
    mask = np.where(np.triu(np.ones((T, T)), 1) == 1, mask_value, 0.0)
    s = q @ k.swapaxes(-1, -2) / (math.sqrt(d) if scale is None else scale) + mask
    y = good_softmax(s) @ v
    y = y.transpose(0, 2, 1, 3).reshape(B, T, Ch) if split == "ok" else y.reshape(B, T, Ch)
    w = attn["c_proj"]["weight"]
    return y @ (w.T if transpose else w) + attn["c_proj"]["bias"]


def good_forward(params, idx, cfg, *, residual=True, ln_f=True):
    x = params["wte"]["weight"][idx] + params["wpe"]["weight"][: idx.shape[1]]
    for p in params["h"]:
        a = good_mha(
            good_layer_norm(x, p["ln_1"]["weight"], p["ln_1"]["bias"], cfg.layer_norm_eps), p["attn"], cfg.n_head
        )
        x = x + a if residual else a
        h = good_layer_norm(x, p["ln_2"]["weight"], p["ln_2"]["bias"], cfg.layer_norm_eps)
        h = h @ p["mlp"]["c_fc"]["weight"] + p["mlp"]["c_fc"]["bias"]
        h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
        x = x + h @ p["mlp"]["c_proj"]["weight"] + p["mlp"]["c_proj"]["bias"]
    if ln_f:
        x = good_layer_norm(x, params["ln_f"]["weight"], params["ln_f"]["bias"], cfg.layer_norm_eps)
    return x @ params["wte"]["weight"].T


def good_loss(logits, targets, ignore_index=-1, axis=-1):
    keep = targets != ignore_index
    z = logits - logits.max(axis, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis, keepdims=True))
    picked = np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], -1)[..., 0]
    return -(picked * keep).sum() / keep.sum()


@pytest.mark.parametrize(
    "checker, fn",
    [
        (C.check_softmax, good_softmax),
        (C.check_softmax, ref.softmax),
        (C.check_layer_norm, good_layer_norm),
        (C.check_attention, good_attention),
        (C.check_causal_mask, lambda T: ref.causal_mask(T, np.float64)),
        (C.check_multi_head_attention, good_mha),
        (C.check_gpt_forward, good_forward),
        (C.check_loss, good_loss),
    ],
)
def test_correct_implementations_pass(checker, fn):
    checker(fn)


def _fails_with(checker, fn, *phrases):
    with pytest.raises(AssertionError) as e:
        checker(fn)
    message = str(e.value)
    for phrase in phrases:
        assert phrase in message, f"expected {phrase!r} in:\n{message}"
    return message


def test_softmax_mistakes():
    _fails_with(C.check_softmax, lambda x: good_softmax(x.T).T, "wrong axis")
    _fails_with(C.check_softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True), "overflow")
    _fails_with(C.check_softmax, lambda x: np.exp(x - x.max(-1, keepdims=True)), "did not divide")
    m = _fails_with(C.check_softmax, lambda x: good_softmax(x)[..., :1], "shape", "expected shape")
    assert "Smallest failing input" in m


def test_softmax_wrong_axis_is_named_in_3d():
    _fails_with(C.check_softmax, lambda x: ref.softmax(x, axis=0), "wrong axis")


def test_layer_norm_mistakes():
    def unbiased(x, w, b, eps):
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) * w + b

    def eps_outside(x, w, b, eps):
        return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + eps) * w + b

    _fails_with(C.check_layer_norm, unbiased, "unbiased variance")
    _fails_with(C.check_layer_norm, eps_outside, "inside the square root")
    _fails_with(C.check_layer_norm, lambda x, w, b, eps: good_layer_norm(x, 1.0, 0.0, eps), "gain")


def test_attention_mistakes():
    def unscaled(q, k, v, mask):
        return good_softmax(q @ k.swapaxes(-1, -2) + (0 if mask is None else mask)) @ v

    def wrong_axis(q, k, v, mask):
        s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]) + (0 if mask is None else mask)
        e = np.exp(s - s.max(-2, keepdims=True))
        return e / e.sum(-2, keepdims=True) @ v

    _fails_with(C.check_attention, unscaled, "not scaled by 1/√d_k")
    _fails_with(C.check_attention, lambda q, k, v, mask: good_attention(q, k, v, None), "attends to the future")
    _fails_with(C.check_attention, wrong_axis, "wrong axis")
    _fails_with(C.check_attention, lambda q, k, v, mask: good_attention(q, k, v, mask)[:, 0], "shape")
    _fails_with(C.check_attention, lambda q, k, v, mask: good_attention(q, k, v, mask).astype(np.float32), "dtype")


def test_attention_crash_is_reported_readably():
    def crash(q, k, v, mask):
        return q.reshape(-1, q.shape[-1] + 1)  # a reshape that cannot work

    _fails_with(C.check_attention, crash, "your function raised ValueError")


def test_causal_mask_mistakes():
    _fails_with(C.check_causal_mask, lambda T: np.triu(np.full((T, T), -1.0), 1), "holds -1", "-np.inf")
    _fails_with(C.check_causal_mask, lambda T: np.tril(np.full((T, T), -np.inf), -1), "wrong triangle")


def test_multi_head_attention_mistakes():
    _fails_with(
        C.check_multi_head_attention, lambda x, a, h: good_mha(x, a, h, split="bad"), "heads split in the wrong order"
    )
    _fails_with(
        C.check_multi_head_attention, lambda x, a, h: good_mha(x, a, h, mask_value=0.0), "attends to the future"
    )
    _fails_with(C.check_multi_head_attention, lambda x, a, h: good_mha(x, a, h, mask_value=-1.0), "adds -1", "-np.inf")
    _fails_with(C.check_multi_head_attention, lambda x, a, h: good_mha(x, a, h, scale=1.0), "not scaled by 1/√d_k")
    _fails_with(
        C.check_multi_head_attention,
        lambda x, a, h: good_mha(x, a, h, scale=math.sqrt(x.shape[-1])),
        "use the head size",
    )
    _fails_with(C.check_multi_head_attention, lambda x, a, h: good_mha(x, a, h, transpose=True), "transposed")


def test_gpt_forward_mistakes():
    _fails_with(C.check_gpt_forward, lambda p, i, c: good_forward(p, i, c, residual=False), "missing residual")
    _fails_with(C.check_gpt_forward, lambda p, i, c: good_forward(p, i, c, ln_f=False), "ln_f")

    def leaky(params, idx, cfg):  # the last position is averaged into every position
        out = good_forward(params, idx, cfg)
        return out + 0.01 * out[:, -1:, :]

    _fails_with(C.check_gpt_forward, leaky, "gpt_forward")


def test_loss_mistakes():
    _fails_with(C.check_loss, lambda lg, t, ii=-1: -good_loss(lg, t, ii), "minus sign")
    _fails_with(C.check_loss, lambda lg, t, ii=-1: good_loss(lg, t, ii) * (t != ii).sum(), "summed")

    def counts_ignored(logits, targets, ignore_index=-1):
        keep = targets != ignore_index
        return good_loss(logits, targets, ignore_index) * keep.sum() / keep.size

    _fails_with(C.check_loss, counts_ignored, "ignore_index were counted")
    _fails_with(C.check_loss, lambda lg, t, ii=-1: good_loss(lg, t, ii, axis=1), "wrong axis")


# -- backward of one layer: students' gradients, written independently of functional_backward -----


def good_linear_backward(dy, x, w, b, *, transpose_dw=False, mean_db=False, db_per_time=False):
    dx = dy @ w.T
    dw = np.einsum("bti,bto->io", x, dy)
    db = dy.sum(axis=(0, 1))
    if transpose_dw:
        dw = dw.T
    if mean_db:
        db = dy.mean(axis=(0, 1))
    if db_per_time:
        db = dy.sum(axis=0)  # (T, out): forgot to sum over time
    return dx, dw, db


def good_layer_norm_backward(dy, x, w, b, eps, *, mean_term=True, var_term=True):
    C = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mu) * inv
    g = dy * w
    dx = C * g
    if mean_term:
        dx = dx - g.sum(-1, keepdims=True)
    if var_term:
        dx = dx - xhat * (g * xhat).sum(-1, keepdims=True)
    return dx * inv / C, (dy * xhat).sum(axis=(0, 1)), dy.sum(axis=(0, 1))


def good_gelu_backward(dy, x, *, inner=True):
    c = math.sqrt(2 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    du = c * (1 + 3 * 0.044715 * x**2) if inner else 1.0
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du)


def good_softmax_backward(dy, y, *, jacobian=True):
    # dx_j = Σ_i dy_i ∂y_i/∂x_j with the full Jacobian diag(y) − y yᵀ, built explicitly
    J = np.einsum("...i,ij->...ij", y, np.eye(y.shape[-1])) - (y[..., :, None] * y[..., None, :] if jacobian else 0)
    return np.einsum("...i,...ij->...j", dy, J)


def good_attention_backward(dout, q, k, v, mask, *, scale=True, use_mask=True, transpose_a=True):
    s_ = math.sqrt(q.shape[-1])
    S = q @ k.swapaxes(-1, -2) / s_ + (0 if mask is None or not use_mask else mask)
    A = good_softmax(S)
    dv = (A.swapaxes(-1, -2) if transpose_a else A) @ dout
    dA = dout @ v.swapaxes(-1, -2)
    dS = good_softmax_backward(dA, A)
    f = 1 / s_ if scale else 1.0
    return dS @ k * f, dS.swapaxes(-1, -2) @ q * f, dv


@pytest.mark.parametrize(
    "layer, fn",
    [
        ("linear", good_linear_backward),
        ("layer_norm", good_layer_norm_backward),
        ("gelu", good_gelu_backward),
        ("softmax", good_softmax_backward),
        ("attention", good_attention_backward),
    ],
)
def test_correct_backwards_pass(layer, fn):
    C.check_layer_backward(fn, layer, max_examples=15)


def _backward_fails_with(layer, fn, *phrases):
    return _fails_with(lambda f: C.check_layer_backward(f, layer, max_examples=15), fn, *phrases)


def test_linear_backward_mistakes():
    def transposed(dy, x, w, b):
        return good_linear_backward(dy, x, w, b, transpose_dw=True)

    m = _backward_fails_with("linear", transposed, "dweight", "transposed")
    assert "Smallest failing input" in m
    _backward_fails_with(
        "linear", lambda *a: good_linear_backward(*a, db_per_time=True), "dbias", "summed over batch and time"
    )
    _backward_fails_with(
        "linear", lambda *a: good_linear_backward(*a, mean_db=True), "dbias", "summed over batch and time", "averaged"
    )
    _backward_fails_with("linear", lambda *a: good_linear_backward(*a)[:2], "return 3 arrays")


def test_layer_norm_backward_mistakes():
    _backward_fails_with(
        "layer_norm", lambda *a: good_layer_norm_backward(*a, mean_term=False), "forgot the mean term −mean(g)"
    )
    _backward_fails_with("layer_norm", lambda *a: good_layer_norm_backward(*a, var_term=False), "σ depending on x")
    _backward_fails_with(
        "layer_norm", lambda *a: good_layer_norm_backward(*a, mean_term=False, var_term=False), "both mean terms"
    )

    def dgamma_from_x(dy, x, w, b, eps):
        dx, _, db = good_layer_norm_backward(dy, x, w, b, eps)
        return dx, (dy * x).sum(axis=(0, 1)), db

    _backward_fails_with("layer_norm", dgamma_from_x, "dweight", "x̂")


def test_gelu_backward_mistakes():
    _backward_fails_with("gelu", lambda dy, x: good_gelu_backward(dy, x, inner=False), "chain rule through u")
    _backward_fails_with("gelu", lambda dy, x: good_gelu_backward(np.ones_like(dy), x), "upstream gradient")


def test_softmax_backward_mistakes():
    m = _backward_fails_with(
        "softmax", lambda dy, y: good_softmax_backward(dy, y, jacobian=False), "missing the −p pᵀ term"
    )
    assert "Smallest failing input" in m
    _backward_fails_with(
        "softmax", lambda dy, y: good_softmax_backward(dy.swapaxes(0, -1), y.swapaxes(0, -1)).swapaxes(0, -1), "dx"
    )


def test_attention_backward_mistakes():
    _backward_fails_with("attention", lambda *a: good_attention_backward(*a, scale=False), "dq", "1/√d_k")
    _backward_fails_with("attention", lambda *a: good_attention_backward(*a, use_mask=False), "without the mask")
    _backward_fails_with("attention", lambda *a: good_attention_backward(*a, transpose_a=False), "dv", "transpose")


def test_an_undiagnosed_gradient_error_shows_finite_differences():
    def off(dy, x):
        return good_gelu_backward(dy, x) * 1.01

    _backward_fails_with("gelu", off, "differs from the reference", "Finite differences give")


def test_unknown_layer_is_a_value_error():
    with pytest.raises(ValueError, match="unknown layer 'relu'"):
        C.check_layer_backward(good_gelu_backward, "relu")
