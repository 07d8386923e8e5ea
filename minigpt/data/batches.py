"""Deterministic batches from a 1-D token stream: batch k is a pure function of (seed, k).

Training resumed at step k sees exactly the batches it would have seen without the interruption, with no sampler
state to save beyond the step. NumPy only: the reference trainer and the JAX loop share it.
"""

from __future__ import annotations

import numpy as np


class BatchSampler:
    """Random (B, T) windows of a 1-D token array; targets are the inputs shifted by one.

    ``without_replacement=True`` visits every window start once per epoch in a seeded random
    order (epoch e uses permutation(seed, e)); otherwise starts are drawn i.i.d. per step.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        *,
        without_replacement: bool = False,
    ) -> None:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}")
        if block_size < 1 or batch_size < 1:
            raise ValueError(f"block_size and batch_size must be ≥ 1, got {block_size} and {batch_size}")
        if len(tokens) < block_size + 1:
            raise ValueError(
                f"the data has {len(tokens)} tokens but a sample of block_size={block_size} needs "
                f"{block_size + 1}; use a smaller block_size or more data"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.without_replacement = without_replacement
        self.num_windows = len(tokens) - block_size  # window starts 0 .. N-T-1
        if without_replacement and batch_size > self.num_windows:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {self.num_windows} distinct windows in the data; "
                "use a smaller batch or sampling with replacement"
            )

    def starts(self, step: int) -> np.ndarray:
        """Window start offsets for batch ``step``, shape (B,)."""
        B = self.batch_size
        if not self.without_replacement:
            return np.random.default_rng([self.seed, step]).integers(0, self.num_windows, size=B)
        flat = step * B + np.arange(B)  # positions in the endless sequence of epochs
        epochs, offsets = np.divmod(flat, self.num_windows)
        out = np.empty(B, dtype=np.int64)
        for e in np.unique(epochs):
            perm = np.random.default_rng([self.seed, 1_000_003, int(e)]).permutation(self.num_windows)
            out[epochs == e] = perm[offsets[epochs == e]]
        return out

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), both int32 (B, T), with y[:, t] = x[:, t+1] in the underlying stream."""
        rows = self.starts(step)[:, None] + np.arange(self.block_size + 1)  # (B, T+1)
        window = self.tokens[rows].astype(np.int32)
        return window[:, :-1], window[:, 1:]

    def __len__(self) -> int:
        """Batches per epoch (windows ÷ batch size, rounded down)."""
        return self.num_windows // self.batch_size
