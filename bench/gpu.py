"""bfloat16 train-step benchmark on whatever accelerator JAX finds, MFU against the chip's bf16 peak.

    PYTHONPATH=. python bench/gpu.py [--preset gpt2] [--batch 8] [--steps 20]

Runs from the source tree with whatever JAX is installed (no ``pip install``: an accelerator machine may
have a newer JAX with CUDA preinstalled and no network). MFU = 6N+12LCT FLOPs/token · tokens/s ÷ the
datasheet's dense bf16 peak of ``jax.devices()[0].device_kind``; a bf16 matmul measured in the same run
is printed beside it, so an unknown chip still gets a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

# Dense (no sparsity) bf16 FLOP/s per chip, from the vendors' datasheets.
BF16_PEAK = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is 756e12
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def datasheet_peak(kind: str) -> float | None:
    """The longest key of BF16_PEAK that occurs in the device kind (``NVIDIA H200`` → H200), or None."""
    hits = [k for k in BF16_PEAK if k.lower() in kind.lower()]
    return BF16_PEAK[max(hits, key=len)] if hits else None


def measured_bf16_peak(n: int = 4096, repeats: int = 10) -> float:
    """FLOP/s of a jitted bf16 (n, n) @ (n, n) matmul: 2n³ / best time."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    f = jax.jit(lambda a, b: a @ b)
    f(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def main() -> None:
    from minigpt.train import StepSpec, TrainConfig, compiled_steps, dropout_key, flops_per_token, init_params

    from minigpt.config import GPTConfig
    from minigpt.training.hostmem import configure_cpu

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="gpt2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--matmul", type=int, default=4096, help="side of the square matmul timed for the peak")
    args = p.parse_args()
    configure_cpu()  # a no-op for GPU/TPU work beyond malloc; what the CLI does

    device = jax.devices()[0]
    print(f"jax {jax.__version__}, {jax.device_count()} × {device.device_kind} ({device.platform})")
    cfg = GPTConfig.preset(args.preset)
    tcfg = TrainConfig(preset=args.preset, batch_size=args.batch, compute_dtype="bfloat16", progress=False)
    steps = compiled_steps(cfg, StepSpec.of(tcfg))
    params = jax.tree.map(jnp.asarray, init_params(cfg, seed=0))
    opt_state = steps.tx.init(params)
    rng = np.random.default_rng(0)
    xs, ys = (rng.integers(0, cfg.vocab_size, (1, args.batch, cfg.block_size)).astype(np.int32) for _ in range(2))
    key, times = dropout_key(0), []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        params, opt_state, out = steps.train_step(params, opt_state, xs, ys, key)
        float(out["loss"])
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times[1:])
    tok_s = args.batch * cfg.block_size / step_s
    flops = tok_s * flops_per_token(cfg)
    measured = measured_bf16_peak(args.matmul)
    sheet = datasheet_peak(device.device_kind)
    print(f"preset {args.preset} ({cfg.num_params():,} parameters), batch {args.batch}×{cfg.block_size}, bfloat16")
    print(f"first step (compile) {times[0]:.1f} s, median step {1e3 * step_s:.1f} ms, {tok_s:,.0f} tokens/s")
    print(f"model {flops / 1e12:.2f} TFLOP/s; a bf16 matmul: {measured / 1e12:.2f} ({100 * flops / measured:.1f} %)")
    if sheet is None:
        print(f"MFU: no datasheet bf16 peak known for {device.device_kind!r} (add it to BF16_PEAK)")
    else:
        print(f"MFU {100 * flops / sheet:.1f} % of the datasheet bf16 peak {sheet / 1e12:.0f} T")


if __name__ == "__main__":
    main()
