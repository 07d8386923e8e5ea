"""``minigpt explain RUN --prompt TEXT [--target TOKEN] [--contrast TOKEN] [--corrupt TEXT] --out DIR``: look inside
a trained run on one prompt.

    minigpt explain runs/baby --prompt "这款手机的性能非常好，" --corrupt "这款手机的性能非常差，" --out explain

Writes into DIR: logit_lens.png (what each block's residual stream would predict at each position),
attribution.png (each head's, MLP's and the embeddings' share of logit[target] − logit[contrast] at the last
position), patching.png with --corrupt (the fraction of that difference restored by patching each block's input
at each position from the prompt into the corrupted prompt), and explain.json with the numbers.
--target defaults to the model's next-token prediction, --contrast to the corrupted prompt's (minigpt.interpret).
"""

from __future__ import annotations

import argparse
import sys

from minigpt.interpret.explain import explain
from minigpt.training.runs import load_run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minigpt explain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", help="a training run directory (see minigpt train)")
    p.add_argument("--prompt", required=True, help="the text to look inside")
    p.add_argument(
        "--target", default=None, metavar="TOKEN", help="the next token to explain (default: the prediction)"
    )
    p.add_argument("--contrast", default=None, metavar="TOKEN", help="explain logit[target] − logit[contrast]")
    p.add_argument("--corrupt", default=None, metavar="TEXT", help="a prompt as long as --prompt, for patching")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and explain.json")
    p.add_argument("--step", type=int, default=None, help="checkpoint step to load (default: the latest)")
    p.add_argument("--backend", choices=("numpy", "jax"), default="numpy", help="which twin to run (default numpy)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, params, tokenizer = load_run(args.run_dir, args.step)
        if tokenizer is None:
            raise ValueError(f"run {args.run_dir!r} has no tokenizer, so a text prompt cannot be encoded")
        report = explain(
            cfg, params, tokenizer, args.prompt, args.out, target=args.target, contrast=args.contrast,
            corrupt=args.corrupt, backend=args.backend,
        )  # fmt: skip
    except (OSError, ValueError) as e:
        print(f"minigpt explain: error: {e}", file=sys.stderr)
        return 2
    parts = sorted(report["attribution"]["parts"].items(), key=lambda kv: -abs(kv[1]))[:5]
    print(f"{report['metric']} at the last position = {report['attribution']['total']:.3f}; largest parts:")
    for name, value in parts:
        print(f"  {name:<18} {value:+.3f}")
    if report["patching"] is not None:
        restored = report["patching"]["restored"]
        print(f"patching: restored fraction per block (max over positions): {[round(max(r), 2) for r in restored]}")
    print(f"wrote {', '.join(report['files'].values())} to {args.out}")
    return 0
