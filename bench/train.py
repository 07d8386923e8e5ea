"""Training speed: ms/step, tokens/s, MFU and first-step compile time of ``minigpt.train``'s jitted step.

    PYTHONPATH=. python bench/train.py [--steps 20] [--presets baby small] [--vocab 65]

MFU = (FLOPs/token · tokens/s) / peak, FLOPs/token = 6N + 12·L·C·T (N: parameters without wpe), and the
peak is a jitted float32 matmul measured in the same run on the same device, so the ratio is honest
about this machine rather than a datasheet.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
from minigpt.train import (
    StepSpec,
    TrainConfig,
    compiled_steps,
    dropout_key,
    flops_per_token,
    init_params,
    matmul_peak_flops,
)

from minigpt.config import GPTConfig
from minigpt.training.hostmem import configure_cpu, hand_over_gil

BATCH = {"baby": 12, "small": 8, "tiny": 16}


def bench(preset: str, vocab: int, steps: int, batch: int, tcfg: TrainConfig, peak: float) -> dict:
    cfg = GPTConfig.preset(preset, vocab_size=vocab)
    tcfg = tcfg.replace(batch_size=batch)
    fns = compiled_steps(cfg, StepSpec.of(tcfg))
    params = jax.tree.map(jax.numpy.asarray, init_params(cfg, seed=0))
    opt_state = fns.tx.init(params)
    rng = np.random.default_rng(0)
    shape = (tcfg.grad_accum, batch, cfg.block_size)
    xs = rng.integers(0, vocab, size=shape).astype(np.int32)
    ys = rng.integers(0, vocab, size=shape).astype(np.int32)
    key = dropout_key(0)

    t0 = time.perf_counter()
    params, opt_state, out = fns.train_step(params, opt_state, xs, ys, key)
    float(out["loss"])  # wait for the result, as the training loop does every step
    hand_over_gil(time.perf_counter() - t0)  # and pause as it does (minigpt.training.hostmem)
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        params, opt_state, out = fns.train_step(params, opt_state, xs, ys, key)
        float(out["loss"])
        hand_over_gil(time.perf_counter() - t0)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    tokens = tcfg.grad_accum * batch * cfg.block_size
    tok_s = tokens / step_s
    return {
        "preset": preset,
        "params": cfg.num_params(),
        "tokens/step": tokens,
        "first step s": first,
        "ms/step": 1e3 * step_s,
        "tokens/s": tok_s,
        "MFU %": 100 * tok_s * flops_per_token(cfg) / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["baby", "small"])
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per preset (median reported)")
    parser.add_argument("--batch", type=int, default=0, help="override the batch size (default: baby 12, small 8)")
    parser.add_argument("--compute_dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--remat", action="store_true")
    args = parser.parse_args()
    configure_cpu()  # what the minigpt CLI does before JAX starts (minigpt.training.hostmem)

    tcfg = TrainConfig(compute_dtype=args.compute_dtype, remat=args.remat, progress=False)
    peak = matmul_peak_flops()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {args.compute_dtype}")
    print(f"measured float32 matmul peak (1024², jitted): {peak / 1e9:.1f} GFLOP/s")
    header = (
        f"{'preset':<7} {'params':>10} {'tok/step':>9} {'1st step s':>10} {'ms/step':>9} {'tokens/s':>10} {'MFU %':>6}"
    )
    print(header)
    for preset in args.presets:
        r = bench(preset, args.vocab, args.steps, args.batch or BATCH.get(preset, 8), tcfg, peak)
        print(
            f"{r['preset']:<7} {r['params']:>10,} {r['tokens/step']:>9} {r['first step s']:>10.2f} "
            f"{r['ms/step']:>9.1f} {r['tokens/s']:>10,.0f} {r['MFU %']:>6.1f}"
        )


if __name__ == "__main__":
    main()
