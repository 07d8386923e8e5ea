"""check_lora: correct implementations (one written unlike the reference) pass, each planted mistake is named."""

from __future__ import annotations

import numpy as np
import pytest

from minigpt.testing import checkers
from minigpt.testing.checks.lora import check_lora

# -- student implementations, written independently of the reference ------------------------------------


def good_init(d_in, d_out, rank, rng, *, zero="B", std=None):
    a = rng.normal(0.0, std or 1 / np.sqrt(d_in), (d_in, rank))
    b = np.zeros((rank, d_out))
    if zero == "A":  # the swapped initialisation
        a, b = np.zeros((d_in, rank)), rng.normal(0.0, 0.1, (rank, d_out))
    if zero == "none":
        b = rng.normal(0.0, 0.1, (rank, d_out))
    if zero == "both":
        a = np.zeros((d_in, rank))
    return a, b


def good_forward(x, W, b, A, B, alpha, *, scale="ok", swap=False, merged=False, drop_bias=False, sign=1.0):
    r = A.shape[1]
    s = {"ok": alpha / r, "none": 1.0, "inverse": r / alpha}[scale]
    if merged:  # written differently: merge first, then one matrix product
        y = np.einsum("...i,io->...o", x, W + s * A @ B)
    elif swap:
        y = x @ W + s * (x @ B.T) @ A.T
    else:
        y = x @ W + sign * s * (x @ A) @ B
    return y if b is None or drop_bias else y + b


def good_step(
    x, W, b, A, B, alpha, dy, lr, *, scale="ok", train_base=False, chain=False, uphill=False, rows="all"
):  # fmt: skip
    s = {"ok": alpha / A.shape[1], "none": 1.0}[scale]
    lr = -lr if uphill else lr
    if rows == "first":  # the classic 3-D slip: only the first batch element's rows
        x, dy = x[0], dy[0]
    X, D = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    if rows == "mean":
        D = D / X.shape[0]
    dW = X.T @ D
    if chain:  # written differently: the merged weight's gradient, projected (dA = s dW Bᵀ, dB = s Aᵀ dW)
        dA, dB = s * dW @ B.T, s * A.T @ dW
    else:
        dA, dB = s * X.T @ (D @ B.T), s * (X @ A).T @ D
    if train_base:
        W = W - lr * dW
        b = None if b is None else b - lr * D.sum(0)
    return W, b, A - lr * dA, B - lr * dB


def test_correct_implementations_pass():
    check_lora(init=good_init, forward=good_forward, step=good_step)
    check_lora(forward=lambda *a: good_forward(*a, merged=True), step=lambda *a: good_step(*a, chain=True))


def test_checkers_module_reexports_it():
    assert checkers.check_lora is check_lora


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forward": lambda *a: good_forward(*a, scale="none")}, "the α/r scale is missing"),
        ({"forward": lambda *a: good_forward(*a, scale="inverse")}, "not r / α"),
        ({"forward": lambda *a: good_forward(*a, swap=True)}, "A and B are swapped"),
        ({"init": lambda *a: good_init(*a, zero="none")}, "B is not zero-initialised"),
        ({"init": lambda *a: good_init(*a, zero="A")}, "A and B are swapped"),
        ({"init": lambda *a: good_init(*a, zero="both")}, "A is zero too"),
        ({"init": lambda d_in, d_out, r, rng: good_init(d_in, d_out, r, rng)[::-1]}, "you returned (B, A)"),
        ({"step": lambda *a: good_step(*a, train_base=True)}, "a gradient reached the frozen W"),
        ({"step": lambda *a: good_step(*a, scale="none")}, "the α/r scale is missing"),
        ({"step": lambda x, W, b, A, B, alpha, dy, lr: (W, b, A, B)}, "A did not change"),
        ({"forward": lambda *a: good_forward(*a, drop_bias=True)}, "the bias b was dropped"),
        ({"forward": lambda *a: good_forward(*a, sign=-1.0)}, "the update's sign is flipped"),
        ({"step": lambda *a: good_step(*a, uphill=True)}, "moved uphill"),
        ({"step": lambda *a: good_step(*a, rows="mean")}, "yours averages them"),
        ({"step": lambda *a: good_step(*a, rows="first")}, "only the first batch element"),
    ],
)
def test_each_classic_mistake_is_named(kwargs, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_lora(**kwargs)


def test_a_crash_and_a_call_without_functions_read_as_sentences():
    def crash(*args):
        raise RuntimeError("oops")

    with pytest.raises(AssertionError, match="your function raised RuntimeError: oops"):
        check_lora(forward=crash)
    with pytest.raises(ValueError, match="at least one of init=, forward=, step="):
        check_lora()
