"""Checkers for exercise 11 (from model to assistant): SFT's shifted targets and masked loss and a reply's summed
log-probability, against ``minigpt.reference.sft`` and ``minigpt.reference.dpo`` in float64; the DPO loss and its
gradient with the reference frozen are ``preference``'s, gathered here in ``CHECKS``. Same contract as
``minigpt.testing.checkers``: a wrong function raises an AssertionError that names the mistake (the mask off by
one, the prompt counted, 0/0 on a batch of prompts …) and shows the smallest input on which it fails.

    targets_t = x_{t+1} if m_{t+1} else ignore_index;   L = Σ_kept −log softmax(z_t)[target_t] / max(N, 1)
    log π(y|x) = Σ_kept log softmax(z_t)[target_t]   (per row)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.reference import dpo as D
from minigpt.reference import functional as F
from minigpt.reference import sft as S
from minigpt.testing.checks.diagnosis import call, compare, describe, generator, run
from minigpt.testing.checks.preference import check_dpo_grads, check_dpo_loss


@st.composite
def _ids_and_mask(draw) -> tuple[np.ndarray, np.ndarray, int]:
    """Chat-like rows (B, T+1): a prompt (mask 0), then reply tokens (mask 1), sometimes a second turn."""
    B, T1, V = draw(st.integers(1, 3)), draw(st.integers(3, 9)), draw(st.integers(3, 12))
    rng = generator(draw)
    mask = np.zeros((B, T1), dtype=bool)
    for row in mask:
        start = int(rng.integers(1, T1))
        row[start : start + int(rng.integers(1, T1))] = True
        if rng.random() < 0.3:  # a second, user, turn: the mask drops back to 0 and comes up again
            row[int(rng.integers(start, T1)) :] = rng.random() < 0.5
    return rng.integers(0, V, (B, T1)), mask, draw(st.sampled_from([-1, -100]))


@st.composite
def _logits_and_targets(draw, none_kept: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """logits (B, T, V) and targets (B, T), some ignored but a few kept in each row; now and then (``none_kept``) a
    batch with none kept at all (prompts only)."""
    B, T, V = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(3, 10))
    rng = generator(draw)
    logits = rng.standard_normal((B, T, V)) * draw(st.sampled_from([1.0, 4.0])) + rng.standard_normal((B, T, 1))
    keep = rng.random((B, T)) < draw(st.sampled_from([0.5, 0.8] + ([0.0] if none_kept else [])))
    if keep.any() or not none_kept:  # every row has a reply (else a per-row mean could pass for the B·T one)
        keep[~keep.any(1), -1] = True
    ignore = draw(st.sampled_from([-1, -100]))
    return logits, np.where(keep, rng.integers(0, V, (B, T)), ignore), ignore


def _gather(logits: np.ndarray, targets: np.ndarray, log: bool = True, axis: int = -1) -> np.ndarray:
    """(log_)softmax(logits, axis)[target] at each position, ignored targets read as 0: (B, T)."""
    z = F.log_softmax(logits, axis=axis) if log else logits
    return np.take_along_axis(z, np.maximum(targets, 0)[..., None], axis=-1)[..., 0]


def _wrapped(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log softmax[target] with a negative target read as NumPy reads it: from the end of the vocabulary."""
    V = logits.shape[-1]
    return np.take_along_axis(F.log_softmax(logits), (targets % V)[..., None], axis=-1)[..., 0]


def check_sft_targets(fn: Callable[..., Any], max_examples: int = 25) -> None:
    """``fn(ids, mask, ignore_index)``: ids and mask (B, T+1) → ``(inputs, targets)``, each (B, T): inputs =
    ids[:, :-1]; targets_t = ids[:, t+1] where mask[:, t+1], else ``ignore_index``."""

    def prop(example):
        ids, mask, ig = example
        ins = {"ids": ids, "mask": mask, "ignore_index": ig}
        got = call(fn, "sft_targets", ins, ids.copy(), mask.copy(), ig)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise AssertionError("sft_targets: return a pair (inputs, targets).\n" + describe(ins))
        want_in, want = S.sft_targets(ids, mask, ig)
        compare(
            got[0],
            want_in,
            ins,
            [("inputs are ids[:, :-1]: position t reads token t and predicts token t+1.", lambda: ids[:, 1:])],
            what="sft_targets (inputs)",
        )
        compare(
            got[1],
            want,
            ins,
            [
                (
                    "the mask is off by one: you kept ids[:, t+1] where mask[:, t]; keep it where mask[:, t+1], "
                    "the mask of the token being predicted (so <|end|> is learnt and <|assistant|> is not).",
                    lambda: np.where(mask[:, :-1], ids[:, 1:], ig),
                ),
                (
                    "the targets are the next tokens, ids[:, 1:], not ids[:, :-1].",
                    lambda: np.where(mask[:, 1:], ids[:, :-1], ig),
                ),
                (
                    "the targets are ids[:, 1:], masked with mask[:, 1:].",
                    lambda: np.where(mask[:, :-1], ids[:, :-1], ig),
                ),
                (
                    "the prompt tokens are counted: every target is kept; set the ones whose mask is 0 to "
                    "ignore_index.",
                    lambda: ids[:, 1:],
                ),
                (
                    "the mask is inverted: you kept the prompt and ignored the reply.",
                    lambda: np.where(mask[:, 1:], ig, ids[:, 1:]),
                ),
            ],
            what="sft_targets (targets)",
        )

    run(prop, _ids_and_mask(), max_examples)


def check_sft_loss(fn: Callable[..., Any], max_examples: int = 25) -> None:
    """``fn(logits, targets, ignore_index)`` → float: logits (B, T, V), targets (B, T); the mean of −log
    softmax(logits_t)[target_t] over the N targets ≠ ignore_index, and 0.0 when N = 0 (not NaN)."""

    def prop(example):
        logits, targets, ig = example
        ins = {"logits": logits, "targets": targets, "ignore_index": ig}
        got = call(fn, "sft_loss", ins, logits.copy(), targets.copy(), ig)
        keep = targets != ig
        nll = -_gather(logits, targets)
        n = int(keep.sum())
        if n == 0 and not np.all(np.isfinite(np.asarray(got, dtype=np.float64))):
            raise AssertionError(
                "sft_loss: a batch of prompts only (no kept target) gave NaN or inf: 0/0. Divide by max(N, 1) "
                "so that it gives 0.0 (and zero gradients).\n" + describe(ins)
            )
        rows = np.maximum(keep.sum(1), 1)
        compare(
            got,
            np.sum(nll * keep) / max(n, 1),
            ins,
            [
                (
                    "the prompt tokens are counted: you averaged −log p over every position; average over the "
                    "kept targets (≠ ignore_index) only.",
                    lambda: nll.mean(),
                ),
                (
                    "the ignored targets are counted: ignore_index = -1 picks the last vocabulary entry "
                    "(NumPy reads -1 from the end); keep only targets ≠ ignore_index.",
                    lambda: -_wrapped(logits, targets).mean(),
                ),
                ("divide by the number N of kept targets, not by B·T.", lambda: np.sum(nll * keep) / keep.size),
                ("that is the sum; the loss is the mean over the kept targets.", lambda: np.sum(nll * keep)),
                (
                    "you averaged each row, then the rows: average over all kept targets at once, so that a "
                    "long reply weighs more than a short one.",
                    lambda: np.mean(np.sum(nll * keep, 1) / rows),
                ),
                (
                    "take log_softmax of the logits before picking the target's entry.",
                    lambda: -np.sum(_gather(logits, targets, log=False) * keep) / max(n, 1),
                ),
            ],
            what="sft_loss",
        )

    run(prop, _logits_and_targets(), max_examples)


def check_sequence_logprobs(fn: Callable[..., Any], max_examples: int = 25) -> None:
    """``fn(logits, targets, ignore_index)`` → (B,): log π(y|x) = Σ_t log softmax(logits_t)[target_t] over the
    targets ≠ ignore_index, per row (``reference.dpo.sequence_logprobs``)."""

    def prop(example):
        logits, targets, ig = example
        ins = {"logits": logits, "targets": targets, "ignore_index": ig}
        got = call(fn, "sequence_logprobs", ins, logits.copy(), targets.copy(), ig)
        keep = targets != ig
        logp = _gather(logits, targets)
        compare(
            got,
            D.sequence_logprobs(logits, targets, ig),
            ins,
            [
                (
                    "that is the mean over the reply's tokens; log π(y|x) is their sum (the log of a product).",
                    lambda: np.sum(logp * keep, -1) / np.maximum(keep.sum(-1), 1),
                ),
                ("the ignored positions are counted: sum only where targets ≠ ignore_index.", lambda: logp.sum(-1)),
                (
                    "the ignored positions are counted: ignore_index = -1 picks the last vocabulary entry "
                    "(NumPy reads -1 from the end); sum only where targets ≠ ignore_index.",
                    lambda: _wrapped(logits, targets).sum(-1),
                ),
                (
                    "log_softmax over the wrong axis: normalise over the vocabulary (the last axis).",
                    lambda: np.sum(_gather(logits, targets, axis=1) * keep, -1),
                ),
                (
                    "take log_softmax of the logits first.",
                    lambda: np.sum(_gather(logits, targets, log=False) * keep, -1),
                ),
                (
                    "wrong sign: that is the negative log-likelihood; return log π, ≤ 0.",
                    lambda: -np.sum(logp * keep, -1),
                ),
            ],
            what="sequence_logprobs",
        )

    run(prop, _logits_and_targets(none_kept=False), max_examples)


CHECKS: dict[str, Callable[..., Any]] = {
    "sft_targets": check_sft_targets,
    "sft_loss": check_sft_loss,
    "sequence_logprobs": check_sequence_logprobs,
    "dpo_loss": check_dpo_loss,
    "dpo_grads": check_dpo_grads,
}
