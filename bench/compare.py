"""minigpt ÷ PyTorch, measured side by side in one run: train step, MFU, compile time, peak RSS, decoding.

    PYTHONPATH=. python bench/compare.py [--presets baby small] [--steps 60 6] [--rounds 3] [--plain]

Each (framework, preset) training run is its own subprocess, run alternately (minigpt, torch, ...: ``--rounds``),
so that its peak RSS (``ru_maxrss``) is its own and the two see the same machine load. Figures are medians
of ``--steps`` steps after the first (which for minigpt includes compilation: "first step").
MFU = 6N+12LCT FLOPs/token · tokens/s ÷ the best peak of a jitted float32 matmul measured in this run
(re-measured before each preset).
Decoding: greedy, batch 1, a 16-token prompt, KV cache on both sides (``minigpt.generate`` is one jitted loop;
the PyTorch baseline is an eager loop). Ratios < 1 mean minigpt is faster / lighter.
minigpt trains with ``TrainConfig.fast`` (the default); ``--plain`` also times the plain model code.
Needs the ``bench`` extra (torch). On a shared machine look at the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from minigpt.training.hostmem import configure_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
BATCH = {"tiny": 16, "baby": 12, "small": 8}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker_jax(preset: str, steps: int, fast: bool = True) -> dict:
    import jax
    from minigpt.train import StepSpec, TrainConfig, compiled_steps, dropout_key, init_params

    from minigpt.config import GPTConfig
    from minigpt.training.hostmem import hand_over_gil

    cfg, B = GPTConfig.preset(preset, vocab_size=65), BATCH[preset]
    fns = compiled_steps(cfg, StepSpec.of(TrainConfig(preset=preset, batch_size=B, fast=fast)))
    params = jax.tree.map(jax.numpy.asarray, init_params(cfg, seed=0))
    opt_state = fns.tx.init(params)
    rng = np.random.default_rng(0)
    xs, ys = (rng.integers(0, 65, size=(1, B, cfg.block_size)).astype(np.int32) for _ in range(2))
    key, times = dropout_key(0), []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        params, opt_state, out = fns.train_step(params, opt_state, xs, ys, key)
        float(out["loss"])  # the host sync the training loop does after each step,
        hand_over_gil(time.perf_counter() - t0)  # and its pause (minigpt.training.hostmem)
        times.append(time.perf_counter() - t0)
    return {"first_s": times[0], "step_s": statistics.median(times[1:]), "rss_mib": _rss_mib()}


def worker_torch(preset: str, steps: int) -> dict:
    import torch
    from torch_baseline import TorchGPT, make_optimizer, train_step

    from minigpt.config import GPTConfig

    torch.manual_seed(0)
    cfg, B = GPTConfig.preset(preset, vocab_size=65), BATCH[preset]
    model = TorchGPT(cfg)
    opt = make_optimizer(model)
    x, y = (torch.randint(0, 65, (B, cfg.block_size)) for _ in range(2))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        train_step(model, opt, x, y)
        times.append(time.perf_counter() - t0)
    return {"first_s": times[0], "step_s": statistics.median(times[1:]), "rss_mib": _rss_mib()}


def run_worker(framework: str, preset: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", framework, "--presets", preset, "--steps", str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def decode_rates(preset: str, new_tokens: int, repeats: int) -> tuple[float, float]:
    import jax
    import torch
    from torch_baseline import TorchGPT, greedy

    from minigpt import reference as ref
    from minigpt.config import GPTConfig
    from minigpt.generate import generate

    cfg = GPTConfig.preset(preset, vocab_size=65)
    params = jax.tree.map(jax.numpy.asarray, ref.init_params(cfg, seed=0, dtype=np.float32))
    prompt = np.random.default_rng(0).integers(0, 65, size=(1, 16)).astype(np.int32)
    model = TorchGPT(cfg).eval()
    tprompt = torch.tensor(prompt, dtype=torch.long)

    def jax_run() -> None:
        generate(params, prompt, cfg, max_new_tokens=new_tokens, temperature=0, backend="jax")

    def torch_run() -> None:
        greedy(model, tprompt, new_tokens)

    jax_run(), torch_run()  # warm-up / compile
    best = {"jax": float("inf"), "torch": float("inf")}
    for _ in range(repeats):  # alternate so both see the same load
        for name, fn in (("jax", jax_run), ("torch", torch_run)):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return new_tokens / best["jax"], new_tokens / best["torch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["baby", "small"], choices=sorted(BATCH))
    parser.add_argument("--steps", nargs="+", type=int, default=[60, 6], help="timed steps per preset")
    parser.add_argument("--decode-preset", default="small", choices=sorted(BATCH))
    parser.add_argument("--decode-tokens", type=int, default=200)
    parser.add_argument("--plain", action="store_true", help="also time minigpt with fast=False")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of subprocesses per preset")
    parser.add_argument("--worker", choices=["jax", "jax-plain", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_cpu()  # what the minigpt CLI does before JAX starts (minigpt.training.hostmem)
    steps = dict(zip(args.presets, args.steps + args.steps[-1:] * len(args.presets), strict=False))
    if args.worker:
        preset, n = args.presets[0], steps[args.presets[0]]
        result = worker_torch(preset, n) if args.worker == "torch" else worker_jax(preset, n, args.worker == "jax")
        print(json.dumps(result))
        return

    import jax
    import torch
    from minigpt.train import flops_per_token, matmul_peak_flops

    from minigpt.config import GPTConfig

    peak = matmul_peak_flops()
    threads = torch.get_num_threads()
    print(f"jax {jax.__version__}, torch {torch.__version__} ({threads} threads), {os.cpu_count()} CPUs")
    print(f"load average {os.getloadavg()[0]:.2f}; fp32 matmul peak (jitted 1024³) {peak / 1e9:.1f} GFLOP/s")
    for preset in args.presets:
        # On a shared machine one matmul timing can land in a busy moment: re-measure and keep the best.
        peak = max(peak, matmul_peak_flops.__wrapped__())
        cfg = GPTConfig.preset(preset, vocab_size=65)
        tokens = BATCH[preset] * cfg.block_size
        r = {"jax": [], "torch": []} | ({"jax-plain": []} if args.plain else {})
        for _ in range(args.rounds):  # alternating rounds; keep each side's best, show each round's ratio
            for fw in r:
                r[fw].append(run_worker(fw, preset, steps[preset]))
        j = min(r["jax"], key=lambda d: d["step_s"])
        t = min(r["torch"], key=lambda d: d["step_s"])
        flops = flops_per_token(cfg) * tokens
        by_round = ", ".join(f"{a['step_s'] / b['step_s']:.2f}" for a, b in zip(r["jax"], r["torch"], strict=True))
        print(
            f"{preset} B={BATCH[preset]} T={cfg.block_size}: minigpt {j['step_s'] * 1e3:.1f} ms/step "
            f"(MFU {flops / j['step_s'] / peak:.0%}), torch {t['step_s'] * 1e3:.1f} ms/step "
            f"(MFU {flops / t['step_s'] / peak:.0%}), "
            f"ratio minigpt/torch {j['step_s'] / t['step_s']:.2f} "
            f"(by round: {by_round})"
        )
        if args.plain:
            p = min(r["jax-plain"], key=lambda d: d["step_s"])
            print(
                f"  minigpt with plain kernels {p['step_s'] * 1e3:.1f} ms/step (MFU {flops / p['step_s'] / peak:.0%}), "
                f"ratio plain/torch {p['step_s'] / t['step_s']:.2f}, first step {p['first_s']:.2f} s, "
                f"peak RSS {p['rss_mib']:.0f} MiB"
            )
        print(
            f"  first step (compile) minigpt {min(d['first_s'] for d in r['jax']):.2f} s, "
            f"torch {min(d['first_s'] for d in r['torch']):.2f} s; peak RSS minigpt "
            f"{max(d['rss_mib'] for d in r['jax']):.0f} MiB, torch {max(d['rss_mib'] for d in r['torch']):.0f} MiB"
        )
    jr, tr = decode_rates(args.decode_preset, args.decode_tokens, repeats=3)
    print(
        f"greedy decoding {args.decode_preset}, batch 1, {args.decode_tokens} tokens: minigpt {jr:.0f} tok/s, "
        f"torch {tr:.0f} tok/s, time ratio minigpt/torch {tr / jr:.2f}"
    )
    print(f"load average at end {os.getloadavg()[0]:.2f}; best fp32 matmul peak seen {peak / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
