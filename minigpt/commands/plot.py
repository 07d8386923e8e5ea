"""``minigpt plot RUN_DIR``: the loss curves of a run (train per logged step, validation per evaluation)."""

from __future__ import annotations

import argparse
import sys

from minigpt.viz.loss import plot_run


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
