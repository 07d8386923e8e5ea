"""A run's loss curves: train per logged step, validation per evaluation, drawn into ``RUN/loss.png``; for a DPO
run also its reward accuracy, reward margin and policy-vs-reference log-ratios per evaluation, in a second panel.

Drawn on an explicit ``Figure`` with the Agg canvas: matplotlib's global backend is never switched, so a notebook
that trains keeps its inline figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from minigpt.training.runs import read_metrics

DPO_CURVES = {
    "val_reward_accuracy": "reward accuracy",
    "val_reward_margin": "reward margin β·Δ",
    "val_logratio_chosen": "log π/π_ref, chosen",
    "val_logratio_rejected": "log π/π_ref, rejected",
}


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
    dpo = [r for r in records if "val_reward_accuracy" in r]  # a DPO run: its preference metrics beside the loss
    fig = Figure(figsize=(12 if dpo else 7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1) if dpo else fig.add_subplot()
    if train:
        ax.plot(*zip(*train, strict=True), label="train (logged steps)", lw=1, alpha=0.8)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("DPO loss −log σ(margin)" if dpo else "cross-entropy loss (nats/token)")
    ax.set_title(f"minigpt: {run_dir.name}")
    ax.grid(alpha=0.3)
    ax.legend()
    if dpo:
        side, steps = fig.add_subplot(1, 2, 2), [r["step"] for r in dpo]
        for key, label in DPO_CURVES.items():
            side.plot(steps, [r[key] for r in dpo], "o-", label=label, ms=3)
        side.set_xlabel("step")
        side.set_title("DPO on the validation pairs")
        side.grid(alpha=0.3)
        side.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, out)
    return out
