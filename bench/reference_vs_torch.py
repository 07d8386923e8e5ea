"""The NumPy reference against PyTorch at GPT-2 scale: one no-grad forward, side by side in one process.

    python bench/reference_vs_torch.py --rounds 5

Shapes of GPT-2 124M (12 layers, 12 heads, width 768, vocab 50,257), batch 1, T = 64 and 256, random weights (no
download): ``minigpt.reference.forward`` against Hugging Face transformers' ``GPT2LMHeadModel`` under
``torch.no_grad()`` (its default attention implementation, float32, CPU). Each round times one forward of each,
the order alternating from round to round; prints each round's ratio reference ÷ torch and the median, and the
BLAS that NumPy and torch use (threadpoolctl). Needs ``pip install -e ".[bench,interop]"``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def blas_info() -> list[str]:
    """One line per BLAS/OpenMP library loaded into this process (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    lines = []
    for lib in threadpool_info():
        extra = lib.get("architecture") or lib.get("threading_layer") or ""
        lines.append(
            f"{lib['internal_api']} {lib.get('version')} {extra} ({lib['num_threads']} threads): {lib['filepath']}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--lengths", default="64,256", help="comma-separated sequence lengths")
    args = p.parse_args(argv)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from minigpt import reference as ref
    from minigpt.config import GPTConfig

    cfg = GPTConfig.preset("gpt2")
    params = ref.init_params(cfg, seed=0)
    torch.manual_seed(0)
    hf = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = GPT2LMHeadModel(hf).eval()
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    rng = np.random.default_rng(0)
    for T in (int(t) for t in args.lengths.split(",")):
        idx = rng.integers(0, cfg.vocab_size, size=(1, T))
        tidx = torch.from_numpy(idx)

        def run_ref(idx: np.ndarray = idx) -> float:
            t0 = time.perf_counter()
            ref.forward(params, idx, cfg)
            return time.perf_counter() - t0

        def run_torch(tidx: torch.Tensor = tidx) -> float:
            t0 = time.perf_counter()
            with torch.no_grad():
                model(tidx)
            return time.perf_counter() - t0

        run_ref(), run_torch()  # warm-up: first-touch of the weights, torch's lazy set-up
        ratios, ref_times, torch_times = [], [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                a, b = run_ref(), run_torch()
            else:
                b, a = run_torch(), run_ref()
            ref_times.append(a)
            torch_times.append(b)
            ratios.append(a / b)
        print(
            f"T={T:4d}: reference {statistics.median(ref_times) * 1e3:7.1f} ms, torch "
            f"{statistics.median(torch_times) * 1e3:7.1f} ms, ratio {statistics.median(ratios):.2f} "
            f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})",
            flush=True,
        )
    print("BLAS and thread pools in this process:")
    for line in blas_info():
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
