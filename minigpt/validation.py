"""Checks at the boundary, shared by both implementations, so the numerical core stays clean.

JAX clamps out-of-range gather indices without a word (token 70000 would silently read row
V-1), so token ids are checked here, on concrete arrays, before either model sees them.
Inside ``jit`` the values are not known; there only shapes and dtypes are checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigpt.config import GPTConfig


def _is_traced(x: Any) -> bool:
    try:
        import jax  # JAX: only for JAX arrays; the NumPy reference shares these checks

        return isinstance(x, jax.core.Tracer)
    except ImportError:  # pragma: no cover - the reference works without JAX
        return False


def _int_dtype(x: Any, name: str) -> np.dtype:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"{name} must be an integer array of shape (B, T), got {type(x).__name__}")
    dtype = np.dtype(x.dtype)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {dtype}; convert with .astype(np.int32)")
    return dtype


def check_id_range(ids: np.ndarray, vocab_size: int, what: str = "token id", also: str = "") -> None:
    """Every id in the (non-empty, concrete) ``ids`` lies in [0, vocab_size); ``also`` names other allowed values."""
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"{what} {lo if lo < 0 else hi} is out of range for vocab_size {vocab_size} "
            f"(valid ids are 0..{vocab_size - 1}{also})"
        )


def check_tokens(idx: Any, cfg: GPTConfig, name: str = "idx") -> None:
    """``idx`` must be integer (B, T) with 1 ≤ T ≤ block_size and 0 ≤ id < vocab_size."""
    _int_dtype(idx, name)
    if len(idx.shape) != 2:
        raise ValueError(
            f"{name} must have rank 2 (B, T), got shape {tuple(idx.shape)}; for a single sequence use {name}[None, :]"
        )
    B, T = idx.shape
    if B < 1 or T < 1:
        raise ValueError(f"{name} has shape {tuple(idx.shape)}; batch and sequence length must be at least 1")
    if T > cfg.block_size:
        raise ValueError(
            f"sequence length T={T} exceeds block_size={cfg.block_size}; crop {name} to its last "
            f"{cfg.block_size} tokens or use a config with a larger block_size"
        )
    if _is_traced(idx):
        return
    check_id_range(np.asarray(idx), cfg.vocab_size)


def check_targets(
    targets: Any, idx_shape: tuple[int, ...], cfg: GPTConfig, ignore_index: int = -1, *, allow_all_ignored: bool = False
) -> None:
    """``targets`` must match ``idx``'s shape, hold ids in [0, V) or ``ignore_index``, not all ignored (unless
    ``allow_all_ignored``: a fine-tuning batch may hold prompts only, and its masked loss is 0)."""
    _int_dtype(targets, "targets")
    if tuple(targets.shape) != tuple(idx_shape):
        raise ValueError(
            f"targets have shape {tuple(targets.shape)} but idx has shape {tuple(idx_shape)}; they must match"
        )
    if _is_traced(targets):
        return
    values = np.asarray(targets)
    valid = values != ignore_index
    if not valid.any():
        if allow_all_ignored:
            return
        raise ValueError(f"every target equals ignore_index={ignore_index}; the mean loss over no tokens is undefined")
    check_id_range(values[valid], cfg.vocab_size, "target id", f", or ignore_index={ignore_index}")
