"""Figures of what the interpret tools measure, each drawn on its own ``matplotlib.figure.Figure`` (no pyplot state,
no backend switch): the logit lens as a heat map with each cell's top token, the logit attribution as bars per
head and MLP, and activation patching as a heat map over blocks × positions. Chinese labels use the bundled CJK
font (``minigpt.fonts``). ``save`` writes a figure to a PNG file through ``FigureCanvasAgg``, ``png`` returns its
bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minigpt.fonts import cjk_font


def _font(text: str) -> Any:
    from matplotlib.font_manager import FontProperties  # matplotlib: only when a figure is drawn

    path = cjk_font(text)
    return FontProperties(fname=path) if path else FontProperties()


def png(fig: Any, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes, e.g. for a notebook: ``IPython.display.Image(png(fig))`` (pyplot never involved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: as above

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_figure(buffer, dpi=dpi, format="png")
    return buffer.getvalue()


def save(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` in one rename (readers never see half a file); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: as above

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    try:
        FigureCanvasAgg(fig).print_figure(str(tmp), dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def lens_figure(
    probs: np.ndarray, top: Sequence[Sequence[str]], tokens: Sequence[str], *, title: str = "logit lens"
) -> Any:
    """Heat map of the logit lens of one sequence: row l = the residual stream after the embeddings (l = 0) or after
    block l, column t = position t (labelled with its input token); the colour is the probability, read at that
    layer, of the token the cell names (``top[l][t]``, e.g. the layer's best guess for the next token)."""
    from matplotlib.figure import Figure  # matplotlib: as above

    probs = np.asarray(probs, np.float64)  # (L + 1, T)
    n_rows, T = probs.shape
    props = _font("".join(tokens) + "".join("".join(row) for row in top) + title)
    fig = Figure(figsize=(max(4.0, 0.55 * T + 2.2), max(2.5, 0.5 * n_rows + 1.4)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(probs, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for layer in range(n_rows):
        for t in range(T):
            color = "white" if probs[layer, t] > 0.6 else "black"
            ax.text(t, layer, top[layer][t], ha="center", va="center", color=color, fontproperties=props, fontsize=9)
    ax.set_xticks(range(T), list(tokens), fontproperties=props)
    ax.set_yticks(range(n_rows), ["embed"] + [f"block {i}" for i in range(n_rows - 1)])
    ax.set_xlabel("input token at position t (cell: the next token it predicts)")
    ax.set_title(title, fontproperties=props)
    fig.colorbar(im, ax=ax, label="probability of the cell's token")
    return fig


def attribution_figure(names: Sequence[str], values: np.ndarray, *, title: str = "logit attribution") -> Any:
    """Horizontal bars, one per part of the residual stream (embeddings, each head, each MLP, biases): its share of
    the logit (difference); positive pushes toward the target."""
    from matplotlib.figure import Figure  # matplotlib: as above

    values = np.asarray(values, np.float64)
    labels = [_short(n) for n in names]
    fig = Figure(figsize=(6.4, max(2.5, 0.22 * len(names) + 1.2)), layout="constrained")
    ax = fig.subplots()
    colors = ["#2b7bba" if v >= 0 else "#d6604d" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel(f"share of the logit (parts sum to {values.sum():.3f})")
    ax.set_title(title, fontproperties=_font(title))
    ax.grid(axis="x", alpha=0.3)
    return fig


def _short(name: str) -> str:
    """'h.2.attn.head.1' → 'L2 H1', 'h.2.mlp' → 'L2 MLP', 'h.0.attn.bias' → 'L0 attn bias'."""
    parts = name.split(".")
    if parts[0] != "h":
        return name
    rest = ".".join(parts[2:])
    if rest.startswith("attn.head."):
        return f"L{parts[1]} H{parts[-1]}"
    return f"L{parts[1]} " + {"mlp": "MLP", "attn.bias": "attn bias"}.get(rest, rest)


def patching_figure(restored: np.ndarray, tokens: Sequence[str], *, kind: str = "resid_pre", title: str = "") -> Any:
    """Heat map of a patching sweep of one sequence: row l = block l's ``kind`` patched, column t = position t; the
    colour is the fraction of the clean logit difference restored (1: all of it, 0: none, < 0: the wrong way)."""
    from matplotlib.figure import Figure  # matplotlib: as above

    restored = np.asarray(restored, np.float64)  # (L, T)
    L, T = restored.shape
    props = _font("".join(tokens) + title)
    fig = Figure(figsize=(max(4.0, 0.55 * T + 2.2), max(2.5, 0.5 * L + 1.4)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(restored, cmap="RdBu", vmin=-1.0, vmax=1.0, aspect="auto")
    for layer in range(L):
        for t in range(T):
            value = round(float(restored[layer, t]), 2) + 0.0  # + 0.0: no "-0.00" for a rounding-noise zero
            color = "white" if abs(value) > 0.6 else "black"
            ax.text(t, layer, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(T), list(tokens), fontproperties=props)
    ax.set_yticks(range(L), [f"h.{i}.{kind}" for i in range(L)], fontsize=8)
    ax.set_xlabel("position patched from the clean prompt into the corrupted one")
    ax.set_title(title or "activation patching: fraction of the logit difference restored", fontproperties=props)
    fig.colorbar(im, ax=ax, label="restored")
    return fig
