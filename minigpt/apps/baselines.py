"""What a user would pick instead of a GPT classifier: two review-sentiment baselines with no word order.

``BagOfChars``: logistic regression on which characters occur, trained by gradient descent in NumPy (no
dependencies; what a model with neither word order nor context gets).

``TfidfChars``: scikit-learn's TF-IDF over character 1–2-grams plus logistic regression, the usual first
choice for short Chinese texts (no word segmentation needed). scikit-learn is a ``bench``/``dev`` extra,
never a runtime dependency: it is imported when a ``TfidfChars`` is fitted, with a one-line error naming the
fix if it is missing. It is also the independent judge of sentiment-controlled generations (``bench/``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class BagOfChars:
    """Logistic regression on character presence: P(pos | x) = σ(w·φ(x) + b), φ_c(x) = 1 if c occurs in x.

    Trained by full-batch gradient descent on  L = mean BCE + (λ/2)‖w‖²  with  ∇_w L = Φᵀ(σ(Φw+b) − y)/N + λw.
    Features are the characters seen in at least ``min_count`` training reviews.
    """

    def __init__(self, min_count: int = 2, l2: float = 1e-4) -> None:
        self.min_count, self.l2 = min_count, l2
        self.vocab: dict[str, int] = {}
        self.w = np.zeros(0, np.float64)
        self.b = 0.0

    def features(self, texts: list[str]) -> np.ndarray:
        """Φ, float32 (N, F): 1 where a known character occurs."""
        phi = np.zeros((len(texts), len(self.vocab)), np.float32)
        for i, text in enumerate(texts):
            cols = [self.vocab[c] for c in set(text) if c in self.vocab]
            phi[i, cols] = 1.0
        return phi

    def fit(self, texts: list[str], y: np.ndarray, steps: int = 300, lr: float = 2.0) -> BagOfChars:
        counts: dict[str, int] = {}
        for text in texts:
            for c in set(text):
                counts[c] = counts.get(c, 0) + 1
        self.vocab = {c: i for i, c in enumerate(sorted(c for c, n in counts.items() if n >= self.min_count))}
        phi = self.features(texts)
        y = np.asarray(y, np.float32)
        w, b = np.zeros(phi.shape[1], np.float32), 0.0
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(phi @ w + b)))  # (N,)
            err = p - y
            w -= lr * (phi.T @ err / len(y) + self.l2 * w)
            b -= lr * float(err.mean())
        self.w, self.b = w, b
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(pos | x), (N,)."""
        return 1.0 / (1.0 + np.exp(-(self.features(texts) @ self.w + self.b)))


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(
            "the TF-IDF baseline needs scikit-learn, which minigpt does not install by default; "
            "pip install 'minigpt[bench]' (or: pip install scikit-learn)"
        ) from None
    from sklearn.feature_extraction.text import TfidfVectorizer  # scikit-learn: an optional dependency
    from sklearn.linear_model import LogisticRegression  # scikit-learn: as above

    return TfidfVectorizer, LogisticRegression


class TfidfChars:
    """TF-IDF of character 1–2-grams + L2-regularised logistic regression (scikit-learn).

        tf(g, x) = 1 + log count(g, x)                 (sublinear; 0 where g does not occur)
        idf(g)   = 1 + log((1 + N) / (1 + df(g)))      (smoothed; df = training texts containing g)
        φ(x)     = tf·idf / ‖tf·idf‖₂,     P(pos | x) = σ(w·φ(x) + b),  fitted with inverse regularisation C

    ``TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)`` + ``LogisticRegression(C=10)``.
    """

    def __init__(self, C: float = 10.0, ngram_range: tuple[int, int] = (1, 2)) -> None:
        self.C, self.ngram_range = C, ngram_range
        self.vectorizer: Any = None
        self.model: Any = None

    def fit(self, texts: list[str], y: np.ndarray) -> TfidfChars:
        """Fit on reviews ``texts`` with labels ``y`` (0 = neg, 1 = pos)."""
        TfidfVectorizer, LogisticRegression = _sklearn()
        if len(texts) != len(y):
            raise ValueError(f"texts and y must have the same length, got {len(texts)} and {len(y)}")
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range, sublinear_tf=True)
        phi = self.vectorizer.fit_transform(texts)
        self.model = LogisticRegression(C=self.C, max_iter=1000).fit(phi, np.asarray(y))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(pos | x), (N,)."""
        if self.model is None:
            raise ValueError("this TfidfChars is not fitted yet; call .fit(texts, y) first")
        return self.model.predict_proba(self.vectorizer.transform(list(texts)))[:, 1]
