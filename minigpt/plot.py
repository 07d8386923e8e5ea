"""``minigpt plot RUN_DIR``: the loss curves of a run (train per logged step, validation per evaluation)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from minigpt.runs import read_metrics


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN/loss.png`` (or ``out``) from ``RUN/metrics.jsonl``; returns the path written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} has no loss values to plot yet")
    out = Path(out) if out is not None else run_dir / "loss.png"
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    plt.close(fig)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minigpt plot", description=__doc__)
    parser.add_argument("run_dir", help="a run directory made by 'minigpt train'")
    parser.add_argument("--out", help="image path (default RUN_DIR/loss.png)")
    args = parser.parse_args(argv)
    try:
        path = plot_run(args.run_dir, args.out)
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
