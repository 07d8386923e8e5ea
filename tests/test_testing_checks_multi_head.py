"""Lesson 02/03 checkers: correct implementations (written here, independently) pass; classic mistakes are named."""

import numpy as np
import pytest

from minigpt.testing.checks import forward_and_loss as FLC
from minigpt.testing.checks import multi_head as MC


def split(x, n_head):
    B, T, C = x.shape
    return np.stack([x[..., h * (C // n_head) : (h + 1) * (C // n_head)] for h in range(n_head)], axis=1)


def merge(y):
    return np.concatenate(list(np.moveaxis(y, 1, 0)), axis=-1)


def seq_ll(logits, idx):
    out = np.zeros(idx.shape[0])
    for b in range(idx.shape[0]):
        for t in range(1, idx.shape[1]):
            z = logits[b, t - 1]
            out[b] += z[idx[b, t]] - z.max() - np.log(np.exp(z - z.max()).sum())
    return out


def fails_with(checker, fn, *phrases):
    with pytest.raises(AssertionError) as e:
        checker(fn)
    for phrase in phrases:
        assert phrase in str(e.value), str(e.value)


def test_correct_implementations_pass():
    MC.check_split_heads(split)
    MC.check_merge_heads(merge)
    FLC.check_sequence_log_likelihood(seq_ll)


def test_split_heads_mistakes():
    fails_with(MC.check_split_heads, lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), "mixes positions and heads")
    with pytest.raises(AssertionError, match="did not transpose|without the transpose"):
        MC.check_split_heads(lambda x, h: x.reshape(*x.shape[:2], h, -1))
    interleaved = lambda x, h: x.reshape(*x.shape[:2], -1, h).transpose(0, 3, 1, 2)  # noqa: E731
    fails_with(MC.check_split_heads, interleaved, "wrong order")


def test_merge_heads_mistakes():
    fails_with(MC.check_merge_heads, lambda y: y.reshape(y.shape[0], y.shape[2], -1), "mixes positions and heads")
    fails_with(
        MC.check_merge_heads, lambda y: y.transpose(0, 2, 3, 1).reshape(y.shape[0], y.shape[2], -1), "wrong order"
    )


def test_sequence_log_likelihood_mistakes():
    def no_shift(logits, idx):
        z = logits - logits.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return np.take_along_axis(logp, idx[..., None], -1)[..., 0].sum(-1)

    fails_with(FLC.check_sequence_log_likelihood, no_shift, "no shift")
    fails_with(FLC.check_sequence_log_likelihood, lambda lg, i: seq_ll(lg, i) / (i.shape[1] - 1), "SUM")
    fails_with(FLC.check_sequence_log_likelihood, lambda lg, i: -seq_ll(lg, i), "wrong sign")
    fails_with(FLC.check_sequence_log_likelihood, lambda lg, i: seq_ll(lg, i).sum(), "shape")
