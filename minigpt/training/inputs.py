"""What a run reads: the prepared token streams (``minigpt.data``'s loaders and checks) and its batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minigpt import data
from minigpt.config import GPTConfig
from minigpt.training.config import TrainConfig

VAL_SEED = 1_234_567  # the same fixed validation batches at every evaluation, in every run


def load_tokens(cfg: GPTConfig, tcfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train tokens, val tokens) of ``tcfg.data``, checked against the model: its vocab, block and batch size."""
    vocab = data.load_meta(tcfg.data)["vocab_size"]
    if vocab != cfg.vocab_size:
        raise ValueError(
            f"the data's vocab_size is {vocab} ({Path(tcfg.data) / 'meta.json'}) but the model has "
            f"vocab_size={cfg.vocab_size}; leave vocab_size unset so it is taken from the data"
        )
    train, val = data.load_split(tcfg.data, "train"), data.load_split(tcfg.data, "val")
    T = cfg.block_size
    for name, tokens in (("train", train), ("val", val)):
        if len(tokens) < T + 1:
            raise ValueError(
                f"block_size={T} is larger than the {name} split allows: it has {len(tokens)} tokens and one sample "
                f"needs block_size + 1 = {T + 1}; use --block_size {max(1, len(tokens) - 1)} or less, or more data"
            )
    windows = len(train) - T
    if tcfg.batch_size > windows:
        raise ValueError(
            f"batch_size={tcfg.batch_size} is larger than the data: the train split has only {windows} distinct "
            f"windows of block_size={T}; use --batch_size {windows} or less, or more data"
        )
    return train, val


def samplers(train: np.ndarray, val: np.ndarray, cfg: GPTConfig, tcfg: TrainConfig) -> tuple[data.BatchSampler, ...]:
    """(train sampler, val sampler): batch k of each is a pure function of (seed, k)."""
    return (
        data.BatchSampler(train, cfg.block_size, tcfg.batch_size, seed=tcfg.seed),
        data.BatchSampler(val, cfg.block_size, tcfg.batch_size, seed=VAL_SEED),
    )


def micro_batches(sampler: data.BatchSampler, step: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys), each (k, B, T): batches step·k … step·k + k − 1, so a resumed run sees the same ones."""
    batches = [sampler.batch(step * k + i) for i in range(k)]
    ys = [b[1] for b in batches]  # DPO's targets are a pair (targets, reference log-probs): stack each part
    stacked = np.stack(ys) if isinstance(ys[0], np.ndarray) else tuple(np.stack(part) for part in zip(*ys, strict=True))
    return np.stack([b[0] for b in batches]), stacked
