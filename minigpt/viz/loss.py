"""A run's loss curves: train per logged step, validation per evaluation, drawn into ``RUN/loss.png``.

Drawn on an explicit ``Figure`` with the Agg canvas: matplotlib's global backend is never switched, so a notebook
that trains keeps its inline figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from minigpt.training.runs import read_metrics


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN/loss.png`` (or ``out``) from ``RUN/metrics.jsonl``; returns the path written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib loads only when a plot is drawn
    from matplotlib.figure import Figure  # matplotlib: as above

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} has no loss values to plot yet")
    out = Path(out) if out is not None else run_dir / "loss.png"
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train, strict=True), label="train (logged steps)", lw=1, alpha=0.8)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(f"minigpt: {run_dir.name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, out)
    return out
