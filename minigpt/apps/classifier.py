"""Review sentiment classifier: the pretrained review GPT plus a linear head, fine-tuned in JAX.

    h = LN_f(Blocks(x))                  (B, T, C)   the trunk, ``GPT.hidden_states``
    z = Σ_t m_t h_t / Σ_t m_t            (B, C)      mean over the review's tokens (m: 1 on tokens, 0 on padding)
    logits = z W + b                     (B, 2)      classes 0 = neg, 1 = pos

Mean pooling, not the final token: with right-padding the last real token sits at a different position in
every row, and the mean gathers evidence from every position (each already sees its whole prefix), which
fine-tunes more steadily in a few hundred steps. Padding on the right never changes the real positions
(causal attention), so a batch gives each review the hidden states it would get alone.

Reviews longer than ``block_size`` tokens are truncated to their first ``block_size`` tokens with a
``UserWarning`` (the opening of a review usually carries the verdict); an empty review is a ``ValueError``.

The baseline, ``BagOfChars``, is logistic regression on which characters occur, trained by gradient descent
in NumPy: what a model with no word order or context gets.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.model import apply, cross_entropy
from minigpt.params import Params

CLASSES: tuple[str, ...] = ("neg", "pos")  # class index i is CLASSES[i]


def label_ids(labels: list[str]) -> np.ndarray:
    """'neg'/'pos' → 0/1 (int64)."""
    bad = sorted({lab for lab in labels if lab not in CLASSES})
    if bad:
        raise ValueError(f"unknown labels {bad}; valid labels are {list(CLASSES)}")
    return np.array([CLASSES.index(lab) for lab in labels], dtype=np.int64)


def encode_reviews(tokenizer: Any, texts: list[str], block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 (N, T), mask float32 (N, T)), right-padded with id 0; T = the longest row (≤ block_size)."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not one string; wrap it: [text]")
    if not texts:
        raise ValueError("no reviews given")
    rows = []
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text) if isinstance(text, str) else []
        if not ids:
            raise ValueError(f"review {i} is empty ({text!r}); the classifier needs at least one token")
        if len(ids) > block_size:
            warnings.warn(
                f"review {i} has {len(ids)} tokens > block_size={block_size}; using its first {block_size}",
                UserWarning,
                stacklevel=2,
            )
            ids = ids[:block_size]
        rows.append(ids)
    T = max(len(r) for r in rows)
    x = np.zeros((len(rows), T), np.int32)
    mask = np.zeros((len(rows), T), np.float32)
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
        mask[i, : len(r)] = 1.0
    return x, mask


def init_head(cfg: GPTConfig, seed: int = 0) -> Params:
    """{"weight": (C, 2) ~ N(0, 0.02²), "bias": zeros (2,)}, float32."""
    rng = np.random.default_rng(seed)
    return {
        "weight": (rng.standard_normal((cfg.n_embd, len(CLASSES))) * 0.02).astype(np.float32),
        "bias": np.zeros(len(CLASSES), np.float32),
    }


def head_logits_numpy(gpt: Params, head: Params, x: np.ndarray, mask: np.ndarray, cfg: GPTConfig) -> np.ndarray:
    """The classifier's logits (N, 2) from the NumPy reference trunk (``minigpt.reference.hidden_states``)."""
    from minigpt.reference import hidden_states

    h = hidden_states(gpt, np.asarray(x), cfg)  # (N, T, C)
    m = np.asarray(mask, h.dtype)[..., None]  # (N, T, 1)
    z = (h * m).sum(axis=1) / m.sum(axis=1)  # (N, C)
    return z @ head["weight"] + head["bias"]


# -- JAX -----------------------------------------------------------------------------------------
def _logits(clf: Params, x: Any, mask: Any, cfg: GPTConfig) -> Any:
    h = apply(clf["gpt"], x, cfg, output="hidden")  # (B, T, C), dropout off
    m = mask[..., None]  # (B, T, 1)
    z = (h * m).sum(axis=1) / m.sum(axis=1)  # (B, C)
    return z @ clf["head"]["weight"] + clf["head"]["bias"]  # (B, 2)


@functools.lru_cache(maxsize=8)
def _logits_fn(cfg: GPTConfig):
    import jax

    return jax.jit(functools.partial(_logits, cfg=cfg))


def head_logits(clf: Params, x: np.ndarray, mask: np.ndarray, cfg: GPTConfig, batch_size: int = 256) -> np.ndarray:
    """The classifier's logits (N, 2) with the JAX trunk; ``clf = {"gpt": params, "head": head}``."""
    f = _logits_fn(cfg)
    out = [np.asarray(f(clf, x[i : i + batch_size], mask[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def predict_proba(clf: Params, cfg: GPTConfig, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """P(class | review), (N, 2); columns follow ``CLASSES``."""
    x, mask = encode_reviews(tokenizer, texts, cfg.block_size)
    z = head_logits(clf, x, mask, cfg)
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def fine_tune(
    gpt: Params,
    cfg: GPTConfig,
    x: np.ndarray,
    mask: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-4,
    head_lr: float = 3e-3,
    seed: int = 0,
    log: Any = None,
) -> Params:
    """Fine-tune trunk and head on (x, mask, y) with AdamW, minimising mean cross-entropy; returns ``clf``.

    The head learns faster (``head_lr``) than the pretrained trunk (``lr``), as usual for fine-tuning.
    Batches are drawn with replacement from ``np.random.default_rng([seed, step])``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    if len(x) != len(y) or len(x) != len(mask):
        raise ValueError(f"x, mask and y must have the same length, got {len(x)}, {len(mask)}, {len(y)}")
    clf = jax.tree.map(jnp.asarray, {"gpt": gpt, "head": init_head(cfg, seed)})
    tx = optax.multi_transform(
        {"gpt": optax.adamw(lr, weight_decay=0.0), "head": optax.adamw(head_lr, weight_decay=0.0)},
        {"gpt": jax.tree.map(lambda _: "gpt", clf["gpt"]), "head": jax.tree.map(lambda _: "head", clf["head"])},
    )
    opt_state = tx.init(clf)

    def loss_fn(clf, xb, mb, yb):
        return cross_entropy(_logits(clf, xb, mb, cfg), yb)  # −mean log P(label | review)

    @jax.jit
    def step(clf, opt_state, xb, mb, yb):
        loss, g = jax.value_and_grad(loss_fn)(clf, xb, mb, yb)
        updates, opt_state = tx.update(g, opt_state, clf)
        return optax.apply_updates(clf, updates), opt_state, loss

    for s in range(steps):
        i = np.random.default_rng([seed, s]).integers(0, len(x), size=batch_size)
        clf, opt_state, loss = step(clf, opt_state, x[i], mask[i], np.asarray(y[i], np.int32))
        if log is not None and (s % 50 == 0 or s == steps - 1):
            log(f"classifier step {s}: loss {float(loss):.4f}")
    return jax.tree.map(np.asarray, clf)


# -- the baseline --------------------------------------------------------------------------------
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


# -- metrics -------------------------------------------------------------------------------------
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """cm[i, j] = number of examples of true class i predicted as j."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """accuracy, per-class precision = cm[c,c]/Σ_i cm[i,c] and recall = cm[c,c]/Σ_j cm[c,j], confusion matrix."""
    cm = confusion_matrix(y_true, y_pred)
    out: dict[str, Any] = {"accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "confusion": cm.tolist()}
    for c, name in enumerate(CLASSES):
        out[f"precision_{name}"] = float(cm[c, c] / max(cm[:, c].sum(), 1))
        out[f"recall_{name}"] = float(cm[c, c] / max(cm[c, :].sum(), 1))
    return out


def plot_confusion(cm: np.ndarray, title: str = "", ax: Any = None) -> Any:
    """A labelled heat map of ``cm`` (rows: true class, columns: predicted); returns the Axes."""
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="black")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax
