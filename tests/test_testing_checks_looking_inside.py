"""minigpt.testing.checks.looking_inside: right answers pass; each typical mistake is named."""

from __future__ import annotations

import numpy as np
import pytest

from minigpt.testing.checks.looking_inside import check_attribute, check_logit_lens, check_patch_position


def layer_norm(x, w, b, eps, axis=-1):
    mu = x.mean(axis, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis, keepdims=True) + eps) * w + b


def lens(streams, ln_f, w_u, eps):
    return layer_norm(streams, ln_f["weight"], ln_f["bias"], eps) @ w_u


def attribute(parts, ln_f, u, eps):
    scale = 1 / np.sqrt(parts.sum(0).var() + eps)
    return ((parts - parts.mean(-1, keepdims=True)) * scale * ln_f["weight"]) @ u


def patch_position(corrupted, clean, position):
    out = corrupted.copy()
    out[:, position] = clean[:, position]
    return out


def test_right_answers_pass():
    check_logit_lens(lens, max_examples=15)
    check_attribute(attribute, max_examples=15)
    check_patch_position(patch_position, max_examples=15)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda s, ln, w, eps: s @ w, "without the final norm"),
        (lambda s, ln, w, eps: layer_norm(s, 1.0, 0.0, eps) @ w, "gain γ"),
        (lambda s, ln, w, eps: layer_norm(s, ln["weight"], ln["bias"], eps, axis=1) @ w, "not over the positions"),
    ],
)
def test_lens_mistakes_are_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        check_logit_lens(fn, max_examples=15)


def own_scale(parts, ln_f, u, eps):
    return (layer_norm(parts, ln_f["weight"], 0.0, eps)) @ u


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (own_scale, "do not sum to the logit: you normalised each part with its own standard deviation"),
        (lambda p, ln, u, eps: layer_norm(p, ln["weight"], ln["bias"], eps) @ u, "applied the whole final norm"),
        (lambda p, ln, u, eps: (p / np.sqrt(p.sum(0).var() + eps) * ln["weight"]) @ u, "subtract each part's mean"),
        (lambda p, ln, u, eps: attribute(p, ln, u, eps) + ln["bias"] @ u, "added once"),
        (lambda p, ln, u, eps: attribute(p, {"weight": 1.0}, u, eps), "gain γ"),
        (lambda p, ln, u, eps: attribute(p, ln, u, eps) * 1.5, "your shares do not sum to the logit"),
    ],
)
def test_attributions_that_do_not_sum_are_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        check_attribute(fn, max_examples=15)


def in_place(corrupted, clean, position):
    corrupted[:, position] = clean[:, position]
    return corrupted


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda a, b, t: patch_position(a, b, t + 1 if t + 1 < a.shape[1] else t - 1), "you patched position"),
        (lambda a, b, t: b.copy(), "patched every position"),
        (lambda a, b, t: np.where(np.arange(a.shape[-1]) == t, b, a), "patched channel"),
        (in_place, "in place"),
        (lambda a, b, t: (_ for _ in ()).throw(NotImplementedError("TODO: x")), "raised NotImplementedError: TODO"),
    ],
)
def test_patching_the_wrong_position_is_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        check_patch_position(fn, max_examples=15)
