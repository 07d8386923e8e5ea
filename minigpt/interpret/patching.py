"""Activation patching: which activation, at which positions, carries what makes a clean prompt's prediction
differ from a corrupted prompt's.

Run the clean prompt and the corrupted one (same length, e.g. 非常好 → 非常差); then run the corrupted one again
with one named activation (``minigpt.interpret.capture``) replaced, at some positions, by its value in the clean
run. With the logit difference m = logit[target] − logit[contrast] at the last position,

    restored = (m_patched − m_corrupted) / (m_clean − m_corrupted)

is 0 when the patch changes nothing and 1 when it gives back the clean prediction in full. Patching the residual
stream h.{l}.resid_pre at one position t at a time (``patching_sweep``) maps where, layer by layer, the
information that decides the prediction sits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.interpret.attribution import check_token
from minigpt.interpret.capture import activation_names, capture, time_axis
from minigpt.params import Params


@dataclass
class PatchResult:
    """The metric m (B,) of the clean, corrupted and patched runs, and the fraction of m_clean − m_corrupted
    that the patch restored (B,)."""

    clean: np.ndarray
    corrupted: np.ndarray
    patched: np.ndarray
    restored: np.ndarray


def logit_diff(logits: np.ndarray, target: int, contrast: int | None = None) -> np.ndarray:
    """m = logit[target] − logit[contrast] at the last position (just logit[target] without a contrast): (B,)."""
    last = logits[:, -1]  # (B, V)
    return last[:, target] - (0.0 if contrast is None else last[:, contrast])


def restored_fraction(patched: np.ndarray, clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    """(m_patched − m_corrupted) / (m_clean − m_corrupted), elementwise."""
    return (patched - corrupted) / (clean - corrupted)


def position_mask(shape: tuple[int, ...], name: str, positions: Sequence[int] | None) -> np.ndarray:
    """A boolean mask broadcastable to an activation ``name`` of ``shape``: true at ``positions`` of its time axis
    (every position for None, none for an empty list)."""
    axis, T = time_axis(name), shape[time_axis(name)]
    keep = np.ones(T, bool) if positions is None else np.zeros(T, bool)
    if positions is not None:
        bad = [t for t in positions if not -T <= int(t) < T]
        if bad:
            raise ValueError(f"positions {bad} are outside the prompt's {T} positions (0..{T - 1}, or −1 for the last)")
        keep[np.asarray(positions, int)] = True
    return keep.reshape([T if a == axis else 1 for a in range(len(shape))])


class Patcher:
    """Clean and corrupted prompts captured once; ``patch`` then reruns only the corrupted one."""

    def __init__(
        self,
        params: Params,
        clean: Any,
        corrupted: Any,
        cfg: GPTConfig,
        target: int,
        contrast: int | None = None,
        *,
        backend: str = "numpy",
    ):
        clean, corrupted = np.asarray(clean), np.asarray(corrupted)
        if clean.shape != corrupted.shape:
            raise ValueError(
                f"the clean prompt has shape {clean.shape} and the corrupted one {corrupted.shape}; they must have the "
                "same number of tokens so that positions line up (change words for words of the same length)"
            )
        self.params, self.cfg, self.backend, self.corrupted_idx = params, cfg, backend, corrupted
        self.target = check_token(target, cfg, "target")
        self.contrast = None if contrast is None else check_token(contrast, cfg, "contrast")
        self.clean_acts = capture(params, clean, cfg, backend=backend)
        self.corrupted_acts = capture(params, corrupted, cfg, backend=backend)
        self.m_clean = logit_diff(self.clean_acts["logits"], self.target, self.contrast)
        self.m_corrupted = logit_diff(self.corrupted_acts["logits"], self.target, self.contrast)
        if np.any(self.m_clean == self.m_corrupted):
            raise ValueError(
                f"the clean and corrupted prompts give the same logit difference ({self.m_clean} vs "
                f"{self.m_corrupted}), so no fraction of it can be restored; choose a corruption that changes the "
                "prediction, or other target/contrast tokens"
            )

    def patch(self, name: str, positions: Sequence[int] | None = None) -> PatchResult:
        """Rerun the corrupted prompt with activation ``name`` taken from the clean run at ``positions`` (None:
        all of them)."""
        if name not in self.clean_acts:
            raise ValueError(f"unknown activation {name!r}; names are listed by activation_names(cfg)")
        if name.endswith(".attn.weights"):
            raise ValueError(
                f"{name} is recorded, not patched: the heads' outputs are computed from the weights before they are "
                "recorded; patch the block's attn.z (the heads' outputs), attn.q, attn.k or attn.v instead"
            )
        clean = self.clean_acts[name]
        mask = position_mask(clean.shape, name, positions)
        acts = capture(self.params, self.corrupted_idx, self.cfg, backend=self.backend, patch={name: (clean, mask)})
        m = logit_diff(acts["logits"], self.target, self.contrast)
        return PatchResult(self.m_clean, self.m_corrupted, m, restored_fraction(m, self.m_clean, self.m_corrupted))

    def sweep(self, kind: str = "resid_pre") -> np.ndarray:
        """restored (L, B, T): patch h.{l}.{kind} at one position t at a time, for every block l and position t."""
        names = [f"h.{i}.{kind}" for i in range(self.cfg.n_layer)]
        if names[0] not in activation_names(self.cfg):
            raise ValueError(f"unknown activation kind {kind!r}; choose a block-level name such as resid_pre, attn.out")
        T = self.corrupted_idx.shape[1]
        return np.stack([np.stack([self.patch(n, [t]).restored for t in range(T)], axis=-1) for n in names])


def patch_activation(
    params: Params,
    clean: Any,
    corrupted: Any,
    cfg: GPTConfig,
    name: str,
    *,
    target: int,
    contrast: int | None = None,
    positions: Sequence[int] | None = None,
    backend: str = "numpy",
) -> PatchResult:
    """Patch activation ``name`` from the clean run of ``clean`` (B, T) into the run of ``corrupted`` (B, T) at
    ``positions`` (None: all) and measure how much of the clean logit difference it restores."""
    return Patcher(params, clean, corrupted, cfg, target, contrast, backend=backend).patch(name, positions)


def patching_sweep(
    params: Params,
    clean: Any,
    corrupted: Any,
    cfg: GPTConfig,
    *,
    target: int,
    contrast: int | None = None,
    kind: str = "resid_pre",
    backend: str = "numpy",
) -> np.ndarray:
    """restored (L, B, T) for h.{l}.{kind} patched at each single position t (``Patcher.sweep``)."""
    return Patcher(params, clean, corrupted, cfg, target, contrast, backend=backend).sweep(kind)
