"""Review sentiment classifier: the pretrained review GPT plus a linear head, fine-tuned in JAX.

    h = LN_f(Blocks(x))                  (B, T, C)   the trunk, ``apply(..., output="hidden")``
    z = pool(h, m)                       (B, C)      m: 1 on the review's tokens, 0 on (right) padding
    logits = z W + b                     (B, 2)      classes 0 = neg, 1 = pos

Two poolings: ``"mean"``, z = Σ_t m_t h_t / Σ_t m_t, gathers evidence from every position; ``"last"``,
z = h at the last real token (position Σ_t m_t − 1 of each right-padded row), the only position that has
attended to the whole review. Padding on the right never changes the real positions (causal attention), so
a batch gives each review the hidden states it would get alone.

Reviews longer than ``block_size`` tokens are truncated to their first ``block_size`` tokens with a
``UserWarning`` (the opening of a review usually carries the verdict); an empty review is a ``ValueError``.
Batches are cut to the smallest power-of-two width that holds their longest review (``length_buckets``), so
short reviews do not pay for the long ones and jit compiles once per width.

The baselines (``BagOfChars``, the TF-IDF ``TfidfChars``) live in ``minigpt.apps.baselines``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minigpt.adapters import LoraSpec
from minigpt.apps.baselines import BagOfChars as BagOfChars  # re-exported: the notebooks' C.BagOfChars
from minigpt.config import GPTConfig
from minigpt.data.corpus import NEGATIVE, POSITIVE
from minigpt.model import apply
from minigpt.model.lora import init_adapters, merge
from minigpt.params import Params
from minigpt.reference import hidden_states

CLASSES: tuple[str, ...] = (NEGATIVE, POSITIVE)  # class index i is CLASSES[i]: the positive class is 1
POOLINGS: tuple[str, ...] = ("mean", "last")


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


def check_pooling(pooling: str) -> str:
    """``pooling`` if it is one of ``POOLINGS``, else a ``ValueError`` naming the valid ones."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
    return pooling


def pool(h: Any, mask: Any, pooling: str) -> Any:
    """z (B, C) from h (B, T, C) and a right-padding mask (B, T); NumPy or JAX arrays alike.

    mean: z_b = Σ_t m_bt h_bt / Σ_t m_bt;   last: z_b = h_{b, n_b − 1} with n_b = Σ_t m_bt.
    """
    if check_pooling(pooling) == "mean":
        m = mask[..., None]  # (B, T, 1)
        return (h * m).sum(axis=1) / m.sum(axis=1)
    last = mask.sum(axis=1).astype(np.int32) - 1  # (B,)
    return h[np.arange(h.shape[0]), last]


def head_logits_numpy(
    gpt: Params, head: Params, x: np.ndarray, mask: np.ndarray, cfg: GPTConfig, pooling: str = "mean"
) -> np.ndarray:
    """The classifier's logits (N, 2) from the NumPy reference trunk (``minigpt.reference.hidden_states``)."""

    h = hidden_states(gpt, np.asarray(x), cfg)  # (N, T, C)
    return pool(h, np.asarray(mask, h.dtype), pooling) @ head["weight"] + head["bias"]


# -- JAX -----------------------------------------------------------------------------------------
def _logits(clf: Params, x: Any, mask: Any, cfg: GPTConfig, pooling: str, key: Any = None) -> Any:
    train = key is not None  # dropout on (at cfg.dropout) when a key is given
    h = apply(clf["gpt"], x, cfg, train=train, key=key, fast=True, output="hidden")  # (B, T, C)
    return pool(h, mask, pooling) @ clf["head"]["weight"] + clf["head"]["bias"]  # (B, 2)


@functools.lru_cache(maxsize=8)
def _logits_fn(cfg: GPTConfig, pooling: str):

    return jax.jit(functools.partial(_logits, cfg=cfg, pooling=pooling))


def length_buckets(mask: np.ndarray, min_width: int = 16) -> np.ndarray:
    """Per row, the smallest power of two ≥ max(its length, ``min_width``), capped at the width T; int (N,)."""
    n = np.maximum(np.asarray(mask).sum(axis=1).astype(np.int64), min_width)
    return np.minimum(2 ** np.ceil(np.log2(n)).astype(np.int64), mask.shape[1])


def head_logits(
    clf: Params, x: np.ndarray, mask: np.ndarray, cfg: GPTConfig, batch_size: int = 256, pooling: str = "mean"
) -> np.ndarray:
    """The classifier's logits (N, 2) with the JAX trunk; ``clf = {"gpt": params, "head": head}``."""
    f = _logits_fn(cfg, check_pooling(pooling))
    width = length_buckets(mask)
    order = np.argsort(width, kind="stable")  # similar lengths together: narrow batches for short reviews
    out = np.zeros((len(x), len(CLASSES)), np.float32)
    for i in range(0, len(x), batch_size):
        rows = order[i : i + batch_size]
        w = int(width[rows].max())
        full = np.resize(rows, min(batch_size, len(x)))  # a short last batch repeats rows: one shape, one compile
        out[rows] = np.asarray(f(clf, x[full, :w], mask[full, :w]))[: len(rows)]
    return out


def predict_proba(clf: Params, cfg: GPTConfig, tokenizer: Any, texts: list[str], pooling: str = "mean") -> np.ndarray:
    """P(class | review), (N, 2); columns follow ``CLASSES``."""
    x, mask = encode_reviews(tokenizer, texts, cfg.block_size)
    z = head_logits(clf, x, mask, cfg, pooling=pooling)
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def smoothed_cross_entropy(logits: Any, y: Any, smoothing: float = 0.0) -> Any:
    """Mean over the batch of −Σ_k q_k log softmax(logits)_k with q = (1 − ε)·onehot(y) + ε/K; ε = 0: plain CE."""

    logp = jax.nn.log_softmax(logits, axis=-1)  # (B, K)
    q = (1.0 - smoothing) * jax.nn.one_hot(y, logits.shape[-1]) + smoothing / logits.shape[-1]
    return -jnp.mean(jnp.sum(q * logp, axis=-1))


def bucketed_batches(width: np.ndarray, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Endless epochs of row indices: each epoch shuffles, groups rows of equal ``width`` into batches of
    ``batch_size`` and shuffles the batches; the last batch of a group is filled up with rows of its group
    drawn at random (every batch has one shape: one compile per width). Deterministic in ``seed``."""
    epoch = 0
    while True:
        rng = np.random.default_rng([seed, epoch])
        batches = []
        for w in np.unique(width):
            group = rng.permutation(np.flatnonzero(width == w))
            for i in range(0, len(group), batch_size):
                b = group[i : i + batch_size]
                fill = rng.choice(group, size=batch_size - len(b)) if len(group) >= 1 else b[:0]
                batches.append(np.concatenate([b, fill]))
        for j in rng.permutation(len(batches)):
            yield batches[j]
        epoch += 1


def fine_tune(
    gpt: Params,
    cfg: GPTConfig,
    x: np.ndarray,
    mask: np.ndarray,
    y: np.ndarray,
    *,
    pooling: str = "mean",
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-4,
    head_lr: float = 3e-3,
    warmup: float = 0.0,
    weight_decay: float = 0.0,
    dropout: float | None = None,
    label_smoothing: float = 0.0,
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    eval_every: int = 100,
    lora: LoraSpec | None = None,
    seed: int = 0,
    log: Callable[[str], Any] | None = None,
) -> Params:
    """Fine-tune trunk and head on (x, mask, y) with AdamW, minimising (label-smoothed) cross-entropy.

    Returns ``clf = {"gpt": ..., "head": ...}``. The head learns faster (``head_lr``) than the pretrained
    trunk (``lr``); ``lr=0`` freezes the trunk (its gradient is not computed: ``stop_gradient``). Both rates
    warm up linearly over the first ``warmup`` fraction of the steps, then follow a cosine to 0 (``warmup=0``
    and no decay keeps them constant, the old behaviour: set ``warmup > 0`` for the schedule). ``dropout``
    overrides ``cfg.dropout`` while training. With ``holdout = (x, mask, y)`` — a part of the TRAINING data,
    never the validation split — its accuracy is measured every ``eval_every`` steps and at the end, and the
    best parameters are returned (early stopping). Batches come from ``bucketed_batches``.

    ``lora`` (a ``minigpt.adapters.LoraSpec``): train adapters W + (α/r)·A B (B = 0 at the start) and the head at
    ``lr`` / ``head_lr`` instead of the trunk; the base weights are an input of the step that is never
    differentiated, and the returned ``clf["gpt"]`` has the adapters merged in (``minigpt.model.lora.merge``).
    """

    check_pooling(pooling)
    if len(x) != len(y) or len(x) != len(mask):
        raise ValueError(f"x, mask and y must have the same length, got {len(x)}, {len(mask)}, {len(y)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be ≥ 1, got {steps} and {batch_size}")
    train_cfg = cfg if dropout is None else cfg.replace(dropout=dropout)
    frozen = lr == 0

    def schedule(peak: float) -> Any:
        if warmup <= 0:
            return peak
        return optax.warmup_cosine_decay_schedule(0.0, peak, max(int(warmup * steps), 1), steps, 0.0)

    base = jax.tree.map(jnp.asarray, gpt)  # an argument of the step, never differentiated under LoRA
    trunk = "lora" if lora is not None else "gpt"
    tree = {trunk: init_adapters(cfg, lora, seed) if lora is not None else gpt, "head": init_head(cfg, seed)}
    tree = jax.tree.map(jnp.asarray, tree)
    tx = optax.multi_transform(
        {
            trunk: optax.set_to_zero() if frozen else optax.adamw(schedule(lr), weight_decay=weight_decay),
            "head": optax.adamw(schedule(head_lr), weight_decay=0.0),
        },
        {k: jax.tree.map(lambda _, k=k: k, v) for k, v in tree.items()},
    )
    opt_state = tx.init(tree)

    def loss_fn(tree, base, xb, mb, yb, key):
        if frozen:
            tree = {**tree, trunk: jax.lax.stop_gradient(tree[trunk])}
        h_params = base if lora is not None else tree["gpt"]
        kw = {"lora": tree["lora"], "lora_scale": lora.scale} if lora is not None else {}
        h = apply(h_params, xb, train_cfg, train=True, key=key, fast=True, output="hidden", **kw)  # (B, T, C)
        logits = pool(h, mb, pooling) @ tree["head"]["weight"] + tree["head"]["bias"]  # (B, 2)
        return smoothed_cross_entropy(logits, yb, label_smoothing)

    @jax.jit
    def step(tree, opt_state, base, xb, mb, yb, key):
        loss, g = jax.value_and_grad(loss_fn)(tree, base, xb, mb, yb, key)
        updates, opt_state = tx.update(g, opt_state, tree)
        return optax.apply_updates(tree, updates), opt_state, loss

    def classifier(tree) -> Params:
        gpt_now = merge(base, tree["lora"], lora.scale) if lora is not None else tree["gpt"]
        return jax.tree.map(np.asarray, {"gpt": gpt_now, "head": tree["head"]})

    def holdout_accuracy(clf) -> float:
        hx, hm, hy = holdout
        return float((head_logits(clf, hx, hm, cfg, pooling=pooling).argmax(axis=1) == np.asarray(hy)).mean())

    width = length_buckets(mask)
    batches = bucketed_batches(width, batch_size, seed)
    key = jax.random.key(seed)
    best, best_acc = None, -1.0
    for s in range(steps):
        i = next(batches)
        w = int(width[i].max())
        key, sub = jax.random.split(key)
        tree, opt_state, loss = step(tree, opt_state, base, x[i, :w], mask[i, :w], np.asarray(y[i], np.int32), sub)
        if holdout is not None and ((s + 1) % eval_every == 0 or s == steps - 1):
            clf = classifier(tree)
            acc = holdout_accuracy(clf)
            if acc > best_acc:
                best, best_acc = clf, acc
            if log is not None:
                log(f"classifier step {s + 1}: holdout accuracy {acc:.4f} (best {best_acc:.4f})")
        if log is not None and (s % eval_every == 0 or s == steps - 1):
            log(f"classifier step {s}: loss {float(loss):.4f}")
    return best if best is not None else classifier(tree)


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
    import matplotlib.pyplot as plt  # matplotlib: only when a confusion matrix is drawn

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
