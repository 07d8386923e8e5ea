"""Domain adaptation: does pretraining on news help a model of e-commerce reviews, at equal total steps?

    PYTHONPATH=. python bench/domain_adaptation.py --work runs/domain --steps 600

1. prepare the reviews and the People's Daily corpus with one char tokenizer over both (--vocab-corpora);
2. train the baby GPT three ways, each for --steps optimizer steps in all:
   (a) reviews only; (b) news only; (c) news for steps/2, then reviews for steps/2 (minigpt train
   --init-from, a fresh optimizer and warmup + cosine schedule for the second half);
3. validation loss of each final model on the reviews val split: the mean next-token NLL over the whole split
   cut into consecutive block_size windows (nats/token), plus the news val split for reference.
Writes WORK/results.json and WORK/domain_adaptation.png (reviews val loss against steps); prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from minigpt.training.hostmem import configure_cpu


def split_loss(params, cfg, tokens: np.ndarray, batch: int = 64) -> float:
    """Mean next-token NLL over ``tokens`` cut into consecutive (block_size + 1)-token windows, dropout off.

    The last batch is padded with ignored targets (-1), so one compiled shape serves every batch."""
    import jax

    from minigpt.model import apply, token_nll

    T = cfg.block_size
    n = (len(tokens) - 1) // T
    rows = -(-n // batch) * batch
    x, y = np.zeros((rows, T), np.int32), np.full((rows, T), -1, np.int32)
    x[:n] = tokens[: n * T].reshape(n, T)
    y[:n] = tokens[1 : n * T + 1].reshape(n, T)
    nll = _NLL.get(cfg) or _NLL.setdefault(cfg, jax.jit(lambda p, a, b: token_nll(apply(p, a, cfg), b, -1).sum()))
    params = jax.tree.map(jax.numpy.asarray, params)
    total = sum(float(nll(params, x[i : i + batch], y[i : i + batch])) for i in range(0, rows, batch))
    return total / (n * T)


_NLL: dict = {}  # one compiled loss per model config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/domain")
    p.add_argument("--steps", type=int, default=600, help="optimizer steps per model in all (even)")
    p.add_argument("--preset", default="baby")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.steps < 2 or args.steps % 2:
        raise SystemExit(f"--steps must be an even number ≥ 2, got {args.steps}")
    configure_cpu()  # what the minigpt CLI does before JAX starts (minigpt.training.hostmem)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from minigpt.train import TrainConfig, load_run, read_metrics, train

    from minigpt.config import GPTConfig
    from minigpt.data import load_split, prepare

    work = Path(args.work)
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty; choose another --work")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    both = ["reviews", "peoples-daily"]
    meta = prepare("reviews", work / "reviews", vocab_corpora=both)
    prepare("peoples-daily", work / "news", vocab_corpora=both)
    times["prepare"] = time.perf_counter() - t0
    cfg = GPTConfig.preset(args.preset, vocab_size=meta["vocab_size"])
    N, half = args.steps, args.steps // 2

    def run(name: str, data: str, steps: int, init: str | None = None) -> Path:
        t = time.perf_counter()
        tcfg = TrainConfig(
            data=str(work / data), out=str(work / name), preset=args.preset, max_steps=steps, progress=False,
            eval_interval=max(steps // 6, 1), ckpt_interval=steps, seed=args.seed, init_from=init,
        )  # fmt: skip
        train(cfg, tcfg, log=lambda s: None)
        times[name] = time.perf_counter() - t
        return work / name

    runs = {
        "(a) reviews only": [run("reviews-only", "reviews", N)],
        "(b) news only": [run("news-only", "news", N)],
    }
    news_half = run("news-half", "news", half)
    runs["(c) news then reviews"] = [news_half, run("news-then-reviews", "reviews", half, init=str(news_half))]

    t0 = time.perf_counter()
    val = {name: load_split(work / name, "val") for name in ("reviews", "news")}
    results = {}
    for label, dirs in runs.items():
        run_cfg, params, _ = load_run(dirs[-1])
        results[label] = {corpus: split_loss(params, run_cfg, tokens) for corpus, tokens in val.items()}
        results[label]["steps"] = N
    times["evaluate"] = time.perf_counter() - t0

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, dirs, offset in (("(a) reviews only", runs["(a) reviews only"], 0),
                                ("(c) news then reviews", runs["(c) news then reviews"][1:], half)):  # fmt: skip
        pts = [(r["step"] + offset, r["val_loss"]) for r in read_metrics(dirs[0]) if "val_loss" in r]
        ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=f"{label} (fixed val batches)")
    ax.plot([N], [results["(b) news only"]["reviews"]], "x", ms=9, label="(b) news only, at the end")
    ax.axvline(half, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("optimizer steps in all")
    ax.set_ylabel("reviews validation loss (nats/token)")
    ax.set_title(f"domain adaptation: {args.preset} GPT, {N} steps, one char tokenizer")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(work / "domain_adaptation.png", dpi=120)

    (work / "results.json").write_text(
        json.dumps({"steps": N, "preset": args.preset, "vocab_size": cfg.vocab_size, "val_loss": results,
                    "seconds": times}, indent=1), "utf-8",
    )  # fmt: skip
    print(f"{args.preset} GPT ({cfg.num_params():,} parameters), char vocab {cfg.vocab_size:,} over both corpora, "
          f"{N} steps per model")  # fmt: skip
    print(f"{'model':28s} {'reviews val loss':>17s} {'news val loss':>14s}")
    for label, r in results.items():
        print(f"{label:28s} {r['reviews']:17.4f} {r['news']:14.4f}")
    print("seconds:", {k: round(v, 1) for k, v in times.items()}, "total", round(sum(times.values()), 1))


if __name__ == "__main__":
    main()
