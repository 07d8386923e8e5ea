"""Checkers for lesson 08 (e-commerce applications): the conditional log-likelihood of a review after a
control token, the zero-shot sentiment score built on it, and per-class precision and recall. The model is a
small random GPT whose logits the check hands to the student's function. Same contract as
``minigpt.testing.checkers``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.config import GPTConfig
from minigpt.reference import functional as F
from minigpt.reference import model as M
from minigpt.testing.checks.diagnosis import call, compare, describe, generator, run


class TinyModel:
    """``logits_fn(idx (B, T)) -> (B, T, V)`` of a random GPT (the checks' stand-in for a trained one)."""

    def __init__(self, vocab_size: int, seed: int):
        self.vocab_size, self.seed = vocab_size, seed
        self.cfg = GPTConfig(vocab_size=vocab_size, block_size=12, n_layer=1, n_head=2, n_embd=8)
        params = M.init_params(self.cfg, seed=seed, dtype=np.float64)
        params["wte"]["weight"] = params["wte"]["weight"] * 40.0  # peaked predictions: mistakes show
        self.params = params

    def __repr__(self) -> str:  # as code that rebuilds it, for a failing example a student reruns
        where = "from minigpt.testing.checks.ecommerce import TinyModel"
        return f"TinyModel({self.vocab_size}, seed={self.seed})  # {where}"

    def __call__(self, idx: Any) -> np.ndarray:
        return M.forward(self.params, np.asarray(idx, dtype=np.int64), self.cfg)

    def log_likelihood(self, seq: list[int], first: int = 1) -> float:
        """Σ_{t ≥ first} log P(seq[t] | seq[<t])."""
        logp = F.log_softmax(self([seq])[0])
        return float(sum(logp[t - 1, seq[t]] for t in range(first, len(seq))))


@st.composite
def _review(draw):
    V = draw(st.integers(5, 9))
    ids = generator(draw).integers(2, V, draw(st.integers(1, 8))).tolist()
    return TinyModel(V, draw(st.integers(0, 2**16))), ids, 0, 1


def check_conditional_log_likelihood(fn: Callable[..., float], max_examples: int = 15) -> None:
    """``fn(logits_fn, ids, label_id)`` → log P(ids | label) = Σ_t log P(ids[t] | label, ids[<t]): the
    sequence [label_id, *ids] is run through ``logits_fn`` once and every token of ids is scored."""

    def prop(example):
        model, ids, pos, _ = example
        ins = {"ids": ids, "label_id": pos, "logits_fn": model}
        got = call(fn, "conditional_log_likelihood", ins, model, list(ids), pos)
        seq = [pos, *ids]
        logp = F.log_softmax(model([seq])[0])
        want = model.log_likelihood(seq)
        compare(
            np.asarray(got, np.float64).reshape(()),
            np.asarray(want),
            ins,
            [
                (
                    "the review was scored without the label in front: feed [label_id, *ids] and score ids.",
                    lambda: np.asarray(model.log_likelihood(ids)),
                ),
                (
                    "off by one: the logits at position t predict token t+1 — score logits[t−1] against seq[t].",
                    lambda: np.asarray(sum(logp[t, seq[t]] for t in range(1, len(seq)))),
                ),
                (
                    "that is a mean over tokens; the log-likelihood of the review is the SUM.",
                    lambda: np.asarray(want / len(ids)),
                ),
                ("wrong sign: a log-likelihood is ≤ 0.", lambda: np.asarray(-want)),
            ],
            what="conditional_log_likelihood",
        )

    run(prop, _review(), max_examples)


def check_zero_shot_score(fn: Callable[..., float], max_examples: int = 15) -> None:
    """``fn(logits_fn, ids, pos_id, neg_id)`` → log P(ids | <pos>) − log P(ids | <neg>): > 0 reads as positive."""

    def prop(example):
        model, ids, pos, neg = example
        ins = {"ids": ids, "pos_id": pos, "neg_id": neg, "logits_fn": model}
        got = call(fn, "zero_shot_score", ins, model, list(ids), pos, neg)
        lp, ln = model.log_likelihood([pos, *ids]), model.log_likelihood([neg, *ids])
        compare(
            np.asarray(got, np.float64).reshape(()),
            np.asarray(lp - ln),
            ins,
            [
                (
                    "wrong sign: the score is log P(x | <pos>) − log P(x | <neg>), positive for a positive review.",
                    lambda: np.asarray(ln - lp),
                ),
                (
                    "compare LOG-likelihoods (a difference), not probabilities.",
                    lambda: np.asarray(np.exp(lp) - np.exp(ln)),
                ),
                ("that is log P(x | <pos>) alone; subtract log P(x | <neg>).", lambda: np.asarray(lp)),
            ],
            what="zero_shot_score",
        )

    run(prop, _review(), max_examples)


def check_precision_recall(fn: Callable[..., tuple[float, float]], max_examples: int = 25) -> None:
    """``fn(pred, gold, label)`` (int arrays) → (precision, recall) for class ``label``: precision = TP/(TP+FP)
    over the predictions of that class, recall = TP/(TP+FN) over its true members; 0.0 when a denominator is 0."""

    @st.composite
    def inputs(draw):
        rng = generator(draw)
        n = draw(st.integers(4, 20))
        return rng.integers(0, 2, n), rng.integers(0, 2, n), draw(st.integers(0, 1))

    def pr(pred, gold, label):
        tp = np.sum((pred == label) & (gold == label))
        p, r = np.sum(pred == label), np.sum(gold == label)
        return np.array([tp / p if p else 0.0, tp / r if r else 0.0])

    def prop(example):
        pred, gold, label = example
        ins = {"pred": pred, "gold": gold, "label": label}
        got = call(fn, "precision_recall", ins, pred.copy(), gold.copy(), label)
        if not isinstance(got, (tuple, list, np.ndarray)) or len(got) != 2:
            raise AssertionError("precision_recall: return two numbers (precision, recall).\n" + describe(ins))
        want = pr(pred, gold, label)
        compare(
            np.asarray(got, np.float64),
            want,
            ins,
            [
                (
                    "precision and recall are swapped: precision divides by what was PREDICTED as the class.",
                    lambda: want[::-1],
                ),
                ("that is for class 1 whatever `label` is; count the class you are given.", lambda: pr(pred, gold, 1)),
                (
                    "that is the accuracy over all examples, not per class.",
                    lambda: np.array([np.mean(pred == gold)] * 2),
                ),
            ],
            what="precision_recall",
        )

    run(prop, inputs(), max_examples)
