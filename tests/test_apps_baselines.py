"""The baselines: the TF-IDF wrapper's features equal a brute-force TF-IDF, and it learns which n-grams matter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.apps.baselines import TfidfChars


def brute_force_tfidf(train: list[str], texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Char 1–2-gram TF-IDF by counting (float64): tf = 1 + log count, idf = 1 + log((1+N)/(1+df)), L2 rows."""

    def grams(t: str) -> list[str]:
        return list(t) + [t[i : i + 2] for i in range(len(t) - 1)]

    vocab = sorted({g for t in train for g in grams(t)})
    df = {g: sum(g in set(grams(t)) for t in train) for g in vocab}
    phi = np.zeros((len(texts), len(vocab)))
    for i, t in enumerate(texts):
        gs = grams(t)
        for j, g in enumerate(vocab):
            if (c := gs.count(g)) > 0:
                phi[i, j] = (1 + math.log(c)) * (1 + math.log((1 + len(train)) / (1 + df[g])))
        norm = np.linalg.norm(phi[i])
        phi[i] /= norm if norm > 0 else 1.0
    return vocab, phi


@settings(max_examples=10, deadline=None)
@given(st.lists(st.text(alphabet="好差很评物流", min_size=1, max_size=8), min_size=2, max_size=6))
def test_tfidf_features_equal_a_brute_force_count(train):
    y = np.arange(len(train)) % 2
    model = TfidfChars().fit(train, y)
    vocab, phi = brute_force_tfidf(train, train + ["好物流", "未知"])
    # sklearn's default token pattern is bypassed by analyzer="char"; its vocabulary is sorted like ours
    assert sorted(model.vectorizer.vocabulary_) == vocab
    got = model.vectorizer.transform(train + ["好物流", "未知"]).toarray()[
        :, [model.vectorizer.vocabulary_[g] for g in vocab]
    ]
    np.testing.assert_allclose(got, phi, rtol=1e-9, atol=1e-12)


def test_tfidf_learns_which_ngrams_matter_and_refuses_bad_use():
    texts = ["很好用", "好评推荐", "非常好", "很差劲", "差评", "非常差"] * 4
    y = np.array([1, 1, 1, 0, 0, 0] * 4)
    model = TfidfChars().fit(texts, y)
    p = model.predict_proba(["好", "差", "推荐", "差劲"])
    assert p[0] > 0.5 > p[1] and p[2] > 0.5 > p[3]
    with pytest.raises(ValueError, match="not fitted yet"):
        TfidfChars().predict_proba(["好"])
    with pytest.raises(ValueError, match="same length"):
        TfidfChars().fit(["好", "差"], np.array([1]))
