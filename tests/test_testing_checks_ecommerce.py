"""Lesson 08 checkers: the tiny model's log-likelihood is the explicit sum; correct functions pass; mistakes named."""

import textwrap

import numpy as np
import pytest

from minigpt.reference import functional as F
from minigpt.testing.checks import ecommerce as AC


def cll(logits_fn, ids, label):
    seq = [label, *ids]
    total = 0.0
    for t in range(1, len(seq)):  # one forward per prefix: independent of the checker's single pass
        logp = F.log_softmax(np.asarray(logits_fn([seq[:t]]))[0, -1])
        total += logp[seq[t]]
    return total


def test_the_tiny_models_log_likelihood_is_the_sum_over_prefixes():
    model = AC.TinyModel(7, seed=3)
    seq = [0, 4, 2, 6, 3]
    assert np.isclose(model.log_likelihood(seq), cll(model, seq[1:], seq[0]))


def fails_with(checker, fn, *phrases):
    with pytest.raises(AssertionError) as e:
        checker(fn)
    for phrase in phrases:
        assert phrase in str(e.value), str(e.value)


def test_correct_implementations_pass():
    AC.check_conditional_log_likelihood(cll, max_examples=8)
    AC.check_zero_shot_score(lambda f, ids, p, n: cll(f, ids, p) - cll(f, ids, n), max_examples=8)

    def pr(pred, gold, label):
        tp = int(((pred == label) & (gold == label)).sum())
        return tp / max(int((pred == label).sum()), 1), tp / max(int((gold == label).sum()), 1)

    AC.check_precision_recall(pr)


def test_mistakes_are_named():
    fails_with(AC.check_conditional_log_likelihood, lambda f, ids, lab: cll(f, ids[1:], ids[0]), "without the label")
    fails_with(AC.check_conditional_log_likelihood, lambda f, ids, lab: cll(f, ids, lab) / len(ids), "SUM")
    fails_with(AC.check_zero_shot_score, lambda f, ids, p, n: cll(f, ids, n) - cll(f, ids, p), "wrong sign")
    fails_with(AC.check_zero_shot_score, lambda f, ids, p, n: cll(f, ids, p), "alone")

    def swapped(pred, gold, label):
        tp = int(((pred == label) & (gold == label)).sum())
        return tp / max(int((gold == label).sum()), 1), tp / max(int((pred == label).sum()), 1)

    fails_with(AC.check_precision_recall, swapped, "swapped")


def test_a_failing_example_names_the_model_so_that_it_reruns():
    with pytest.raises(AssertionError) as e:
        AC.check_conditional_log_likelihood(lambda logits_fn, ids, label_id: -1.0)
    block = str(e.value).split("Smallest failing input:\n", 1)[1]
    assert "# from minigpt.testing.checks.ecommerce import TinyModel" in block
    namespace: dict = {"np": np, "TinyModel": AC.TinyModel}
    exec(textwrap.dedent(block), namespace)  # noqa: S102 - the checker's own output, in a test
    model, ids = namespace["logits_fn"], namespace["ids"]
    assert model([[namespace["label_id"], *ids]]).shape == (1, len(ids) + 1, model.vocab_size)
