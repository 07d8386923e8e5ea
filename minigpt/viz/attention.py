"""Attention maps: who attends to whom, per layer and head, from either implementation, and a heat-map.

A_{l,h}[t, s] = softmax_s(q_t · k_s / √d_k + M[t, s]) is how much position t reads from position s in
head h of layer l; each row sums to 1 and the causal mask makes it zero for s > t.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.fonts import cjk_font
from minigpt.reference import attention_weights


def attention_maps(model_or_params: Any, idx: Any, cfg: GPTConfig | None = None) -> np.ndarray:
    """The attention weights A for the token ids ``idx`` as a NumPy array.

    ``model_or_params``: a Flax ``GPT`` (uses ``GPT.attention_weights``) or a reference-layout params dict
    (uses ``reference.attention_weights``, which needs ``cfg``). ``idx``: one sequence (T,) → A (L, H, T, T),
    or a batch (B, T) → A (L, B, H, T, T).
    """
    ids = np.asarray(idx)
    if ids.ndim not in (1, 2):
        raise ValueError(f"idx must be one sequence (T,) or a batch (B, T) of token ids, got shape {ids.shape}")
    batch = ids if ids.ndim == 2 else ids[None]
    if isinstance(model_or_params, dict):
        if cfg is None:
            raise ValueError("attention_maps(params, idx, cfg): a params dict needs its GPTConfig as cfg")

        maps = attention_weights(model_or_params, batch, cfg)  # (L, B, H, T, T)
    elif hasattr(model_or_params, "attention_weights"):
        if cfg is not None and cfg != model_or_params.cfg:
            raise ValueError(f"cfg {cfg} differs from the model's own config {model_or_params.cfg}; drop cfg")
        maps = np.asarray(model_or_params.attention_weights(batch))  # (L, B, H, T, T)
    else:
        raise ValueError(
            f"expected a minigpt GPT model or a params dict, got {type(model_or_params).__name__}; "
            "build one with GPT(cfg, rngs=...) or reference.init_params(cfg)"
        )
    return maps if ids.ndim == 2 else maps[:, 0]


def token_labels(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """One readable label per token id: its decoded text, with a byte-level BPE fragment of a multi-byte
    character (which does not decode on its own) shown as the tokenizer's own symbol for it."""
    labels = []
    for i in ids:
        text = tokenizer.decode([int(i)])
        if "\ufffd" in text:
            text = tokenizer.id_to_token(int(i))
        labels.append({"\n": "\\n", " ": "␣"}.get(text, text))
    return labels


def plot_attention(
    weights: Any,
    tokens: Sequence[str] | None = None,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    cell: float = 0.32,
    cmap: str = "viridis",
    font: str | None = "auto",
):
    """Heat-map(s) of attention weights: rows = queries (position t), columns = keys (position s).

    ``weights``: (T, T) for one map or (N, T, T) for N maps (e.g. the heads of one layer), in a grid of
    ``ncols``. ``tokens``: T labels for the axes. ``font``: a font file for the labels; "auto" picks one
    that can draw them (``minigpt.fonts.cjk_font``, which warns if some characters would be boxes).
    Returns a ``matplotlib.figure.Figure`` (no pyplot state, works under Agg): save it with
    ``fig.savefig(path)``; a notebook shows it when it is a cell's last expression.
    """
    from matplotlib.figure import Figure  # matplotlib: only when a figure is drawn
    from matplotlib.font_manager import FontProperties  # matplotlib: as above

    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"weights must be (T, T) or (N, T, T), got shape {np.shape(weights)}")
    n, T, _ = w.shape
    if tokens is not None and len(tokens) != T:
        raise ValueError(f"got {len(tokens)} token labels for {T} positions; pass one label per position")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} maps")
    if font == "auto":
        font = cjk_font("".join(tokens or []) + "".join(titles or []))
    props = FontProperties(fname=font) if font else FontProperties()

    cols = min(ncols, n)
    rows = -(-n // cols)
    side = max(2.2, cell * T + 0.8)
    fig = Figure(figsize=(cols * side + 0.6, rows * side), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        im = ax.imshow(w[i], cmap=cmap, vmin=0.0, vmax=1.0)
        if titles is not None:
            ax.set_title(titles[i], fontproperties=props)
        if tokens is not None:
            ax.set_xticks(range(T), tokens, fontproperties=props, fontsize=9)
            ax.set_yticks(range(T), tokens, fontproperties=props, fontsize=9)
        ax.set_xlabel("key s (attended to)")
        ax.set_ylabel("query t")
    fig.colorbar(im, ax=axes, shrink=0.8, label="weight")
    return fig
