"""Teaching diagrams drawn by code: the decoder block, attention as a soft lookup, the head split and merge, the KV
cache filling up, and LoRA's A·B beside W.

Each ``*_figure`` function returns a ``matplotlib.figure.Figure`` (never pyplot's global state, never
``matplotlib.use``); a notebook shows it when it is a cell's last expression, ``fig.savefig(path)`` writes it. Every
text is at least 9 pt, and Chinese labels are set in the font ``minigpt.fonts.cjk_font`` picks (the bundled one).
Where a diagram encodes numbers, the numbers come from a small public function beside it (``lookup_weights``,
``cache_states``, ``lora_counts``) so that a test can check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TEXT_PT = 10  # every label and tick: readable at the page width (≥ 9 pt)
COLORS = {"norm": "#f6d55c", "attn": "#3caea3", "mlp": "#ed553b", "embed": "#20639b", "head": "#bbbbbb"}
HEAD_COLORS = ("#20639b", "#3caea3", "#f6d55c", "#ed553b", "#8e6cbd", "#7f7f7f", "#bcbd22", "#17becf")


def _font(text: str) -> Any:
    from matplotlib.font_manager import FontProperties

    from minigpt.fonts import cjk_font

    path = cjk_font(text) if any(ord(c) > 0x2E7F for c in text) else None
    return FontProperties(fname=path, size=TEXT_PT) if path else FontProperties(size=TEXT_PT)


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str, size: int = TEXT_PT) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="black", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontproperties=_font(text), fontsize=size)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "lw": 1.2, "color": "black"})


# ---------------------------------------------------------------- the decoder block (GPT-2 and Llama)

BLOCKS = {
    "gpt2": {
        "title": "GPT-2 block (pre-norm)",
        "embed": "token table wte[x] + position table wpe[t]",
        "norm": "LayerNorm",
        "attn": "causal multi-head attention\n(H heads, learned positions)",
        "mlp": "MLP: Linear C→4C,\nGELU, Linear 4C→C",
        "head": "LayerNorm → logits = h · wteᵀ (tied)",
    },
    "llama": {
        "title": "Llama block (pre-norm)",
        "embed": "token table only (no wpe)",
        "norm": "RMSNorm",
        "attn": "grouped-query attention\n(RoPE on q and k, H_kv < H)",
        "mlp": "SwiGLU MLP (3 matrices):\nSiLU(x W_g) ⊙ x W_u → W_d",
        "head": "RMSNorm → logits = h · W_lm (untied)",
    },
}


def _draw_block(ax: Any, kind: str) -> None:
    labels = BLOCKS[kind]
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 15)
    ax.set_axis_off()
    ax.set_title(labels["title"], fontsize=TEXT_PT + 2)
    stream_x = 2.0  # the residual stream: one vertical line every block adds to
    _box(ax, 0.3, 0.3, 9.4, 1.1, "token ids (B, T)", "white")
    _box(ax, 0.3, 2.0, 9.4, 1.1, labels["embed"], COLORS["embed"] + "80")
    ax.add_patch(_frame(0.1, 3.6, 9.8, 8.0))
    ax.text(9.7, 11.3, "× L blocks", ha="right", va="top", fontsize=TEXT_PT, style="italic")
    ax.plot([stream_x, stream_x], [3.1, 12.3], color="black", lw=2.5, zorder=0)
    ax.text(stream_x - 0.25, 3.9, "residual stream (B, T, C)", rotation=90, ha="right", va="bottom", fontsize=TEXT_PT)
    for y0, kind_key, label in ((4.2, "attn", labels["attn"]), (7.8, "mlp", labels["mlp"])):
        _box(ax, 3.0, y0, 2.2, 0.9, labels["norm"], COLORS["norm"])
        _box(ax, 5.7, y0 - 0.2, 4.0, 1.3, label, COLORS[kind_key] + "90", size=TEXT_PT - 1)
        _arrow(ax, (stream_x, y0 + 0.45), (3.0, y0 + 0.45))  # branch off the stream
        _arrow(ax, (5.2, y0 + 0.45), (5.7, y0 + 0.45))
        _arrow(ax, (7.7, y0 + 1.1), (stream_x + 0.25, y0 + 2.1))  # ... and add back into it
        ax.text(stream_x, y0 + 2.2, "⊕", ha="center", va="center", fontsize=TEXT_PT + 8, color="black")
    _box(ax, 0.3, 12.3, 9.4, 1.1, labels["head"], COLORS["head"])
    _box(ax, 0.3, 13.7, 9.4, 1.0, "softmax → P(next token | tokens up to t)", "white")
    _arrow(ax, (5.0, 1.4), (5.0, 2.0))  # ids → embeddings
    _arrow(ax, (5.0, 13.4), (5.0, 13.7))  # logits → probabilities


def _frame(x: float, y: float, w: float, h: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, ls="--", lw=1, ec="gray")


def decoder_block_figure(kinds: Sequence[str] = ("gpt2",)) -> Any:
    """The pre-norm decoder: embeddings → L × (x += Attn(Norm(x)); x += MLP(Norm(x))) → Norm → logits.

    ``kinds``: "gpt2" and/or "llama", drawn side by side (lesson 10 shows both)."""
    from matplotlib.figure import Figure

    unknown = [k for k in kinds if k not in BLOCKS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {sorted(BLOCKS)}, got {list(kinds)}")
    fig = Figure(figsize=(5.2 * len(kinds), 7.2), layout="constrained")
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds, strict=True):
        _draw_block(ax, kind)
    return fig


# ---------------------------------------------------------------- attention as a soft lookup


def lookup_weights(query: Any, keys: Any) -> np.ndarray:
    """a_s = softmax_s(q · k_s / √d): how much of value s the query reads.  query (d,), keys (S, d) → (S,)."""
    q, k = np.asarray(query, dtype=np.float64), np.asarray(keys, dtype=np.float64)
    if q.ndim != 1 or k.ndim != 2 or k.shape[1] != q.shape[0]:
        raise ValueError(f"query must be (d,) and keys (S, d) with the same d, got {q.shape} and {k.shape}")
    scores = k @ q / np.sqrt(q.shape[0])  # (S,)
    e = np.exp(scores - scores.max())
    return e / e.sum()


def soft_lookup_figure(query: Any, keys: Any, values: Any, names: Sequence[str]) -> Any:
    """A dictionary lookup made soft: the query is scored against every key, the scores become weights that sum to
    1, and the answer is the weighted average of the values. A hard lookup would put weight 1 on one key.

    ``query`` (d,), ``keys`` (S, d), ``values`` (S,) scalars so that the average can be drawn, ``names``: S labels.
    The weight bars are ``lookup_weights(query, keys)``; the output bar is their average of the values."""
    from matplotlib.figure import Figure

    k, v = np.asarray(keys, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if v.shape != (k.shape[0],) or len(names) != k.shape[0]:
        raise ValueError(f"need one scalar value and one name per key: {k.shape[0]} keys, values {v.shape}")
    w = lookup_weights(query, k)
    scores = k @ np.asarray(query, dtype=np.float64) / np.sqrt(k.shape[1])
    font = _font("".join(names))
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax_s, ax_w, ax_o = fig.subplots(1, 3, width_ratios=[1, 1, 0.45])
    pos = np.arange(len(names))
    ax_s.bar(pos, scores, color=COLORS["embed"])
    ax_s.set_title("1. score each key: q·k_s / √d", fontsize=TEXT_PT + 1)
    ax_w.bar(pos, w, color=COLORS["attn"])
    ax_w.set_ylim(0, 1)
    ax_w.set_title("2. softmax: weights a_s (sum to 1)", fontsize=TEXT_PT + 1)
    for i, a in enumerate(w):
        ax_w.text(i, a + 0.02, f"{a:.2f}", ha="center", va="bottom", fontsize=TEXT_PT - 1)
    ticks = [f"{name}\nv={val:g}" for name, val in zip(names, v, strict=True)]  # each key's value under it
    for ax in (ax_s, ax_w):
        ax.set_xticks(pos, ticks, fontproperties=font)
        ax.tick_params(labelsize=TEXT_PT)
    out = float(w @ v)
    ax_o.bar([0, 1], [out, v[np.argmax(w)]], color=[COLORS["mlp"], COLORS["head"]])
    ax_o.set_xticks([0, 1], ["soft\nΣ a_s v_s", "hard\nbest key"])
    ax_o.set_title(f"3. output = {out:.2f}", fontsize=TEXT_PT + 1)
    ax_o.tick_params(labelsize=TEXT_PT)
    return fig


# ---------------------------------------------------------------- the head split and merge


def head_split_figure(T: int = 4, n_head: int = 4, d_k: int = 3) -> Any:
    """(T, C) → H slices (T, d_k), one per head, each attends on its own → concatenated back to (T, C) → · Wᴼ.

    Channel c belongs to head c // d_k; the colours show which."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    if min(T, n_head, d_k) < 1 or n_head > len(HEAD_COLORS):
        raise ValueError(f"need T, d_k ≥ 1 and 1 ≤ n_head ≤ {len(HEAD_COLORS)}, got {T}, {n_head}, {d_k}")
    C = n_head * d_k
    owner = np.tile(np.arange(C) // d_k, (T, 1))  # (T, C): which head owns each channel
    cmap = ListedColormap(HEAD_COLORS[:n_head])
    fig = Figure(figsize=(2.6 + 1.3 * n_head + 2.6, 1.4 + 0.3 * T), layout="constrained")
    axes = fig.subplots(1, n_head + 2, width_ratios=[C, *([d_k] * n_head), C])
    panels = [("q = x W_Q\n(T, C)", owner)]
    panels += [(f"head {h}\n(T, d_k)", np.full((T, d_k), h)) for h in range(n_head)]
    panels += [("concat, then · W_O\n(T, C)", owner)]
    for ax, (title, grid) in zip(axes, panels, strict=True):
        ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=n_head - 0.5)
        ax.set_xticks(np.arange(grid.shape[1] + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(T + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1.5)
        ax.tick_params(which="both", length=0, labelsize=TEXT_PT)
        ax.set_xticks([])
        ax.set_yticks(range(T), [f"t={t}" for t in range(T)] if ax is axes[0] else [])
        ax.set_title(title, fontsize=TEXT_PT)
    axes[0].set_xlabel("split: channel c → head c // d_k", fontsize=TEXT_PT)
    axes[-1].set_xlabel("merge: heads side by side, then mix", fontsize=TEXT_PT)
    return fig


# ---------------------------------------------------------------- the KV cache filling up

EMPTY, CACHED, NEW = 0, 1, 2


def cache_states(prompt_len: int, n_new: int, n_slots: int) -> np.ndarray:
    """The cache's slots after the prefill and after each decoding step: (1 + n_new, n_slots) with EMPTY (0),
    CACHED (1, keys/values kept from earlier calls) and NEW (2, written by this call). Row 0 is the prefill, which
    writes the prompt's ``prompt_len`` slots at once; row i writes slot ``prompt_len + i - 1`` only."""
    if prompt_len < 1 or n_new < 0 or prompt_len + n_new > n_slots:
        raise ValueError(f"need 1 ≤ prompt_len and prompt_len + n_new ≤ n_slots, got {prompt_len}, {n_new}, {n_slots}")
    states = np.full((1 + n_new, n_slots), EMPTY)
    states[0, :prompt_len] = NEW
    for i in range(1, n_new + 1):
        filled = prompt_len + i - 1  # slots already written before this step
        states[i, :filled] = CACHED
        states[i, filled] = NEW
    return states


def kv_cache_figure(prompt_len: int = 4, n_new: int = 4, n_slots: int = 10) -> Any:
    """One row per call of the model: the prefill writes the prompt's keys and values, then each decoding step
    computes q, k, v for one new token only, writes its slot and attends over every filled slot."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    states = cache_states(prompt_len, n_new, n_slots)
    fig = Figure(figsize=(1.2 + 0.55 * n_slots, 0.8 + 0.45 * len(states)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(states, cmap=ListedColormap(["#eeeeee", COLORS["embed"], COLORS["mlp"]]), vmin=-0.5, vmax=2.5)
    ax.set_xticks(np.arange(n_slots + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(states) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    ax.set_xticks(range(n_slots), [str(s) for s in range(n_slots)])
    rows = [f"prefill ({prompt_len} tokens)"] + [f"step {i}: +1 token" for i in range(1, n_new + 1)]
    ax.set_yticks(range(len(states)), rows)
    ax.tick_params(labelsize=TEXT_PT)
    ax.set_xlabel("cache slot (position)", fontsize=TEXT_PT)
    ax.set_title("KV cache: grey empty · blue kept from earlier calls · red written by this call", fontsize=TEXT_PT)
    return fig


# ---------------------------------------------------------------- LoRA: A·B beside W


def lora_counts(d_in: int, d_out: int, rank: int) -> tuple[int, int]:
    """(numbers in W, numbers in A and B) = (d_in · d_out, r · (d_in + d_out)) for one adapted layer."""
    if min(d_in, d_out, rank) < 1:
        raise ValueError(f"d_in, d_out and rank must be ≥ 1, got {d_in}, {d_out}, {rank}")
    return d_in * d_out, rank * (d_in + d_out)


def lora_figure(d_in: int = 16, d_out: int = 12, rank: int = 2) -> Any:
    """y = x W + (α/r) · x A B: the frozen W (d_in, d_out) beside the trained A (d_in, r) and B (r, d_out), drawn to
    scale, with their sizes. B starts at zero, so at step 0 the adapted layer is the base layer."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n_w, n_ab = lora_counts(d_in, d_out, rank)
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_aspect("equal")
    shapes = [  # (x, y of the top-left corner, width = columns, height = rows, colour, label)
        (0, 0, d_out, d_in, COLORS["head"], f"W (frozen)\n{d_in}×{d_out}"),
        (d_out + 6, 0, rank, d_in, COLORS["attn"], f"A\n{d_in}×{rank}"),
        (d_out + 8 + rank, d_in - rank, d_out, rank, COLORS["mlp"], f"B (starts at 0)\n{rank}×{d_out}"),
    ]
    for x, y, w, h, color, label in shapes:
        ax.add_patch(Rectangle((x, -y - h), w, h, fc=color, ec="black"))
        ax.text(x + w / 2, -y - h - 0.8, label, ha="center", va="top", fontsize=TEXT_PT)
    ax.text(d_out + 3, -d_in / 2, "+ α/r ·", ha="center", va="center", fontsize=TEXT_PT + 4)
    ax.text(d_out + 7 + rank, -d_in + rank / 2, "·", ha="center", va="center", fontsize=TEXT_PT + 8)
    ax.set_xlim(-1, 2 * d_out + rank + 9)
    ax.set_ylim(-d_in - 5, 3)
    ax.set_title(
        f"y = x W + (α/r) x A B: W holds {n_w:,} numbers, A and B {n_ab:,} ({n_ab / n_w:.0%})", fontsize=TEXT_PT + 1
    )
    return fig
