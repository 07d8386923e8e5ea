"""``minigpt demo``: the main job. For now: build a model, run both implementations, compare."""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minigpt demo", description=__doc__)
    parser.add_argument("--preset", default="tiny", help="GPTConfig preset (tiny, baby, small, gpt2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)

    import jax

    from minigpt import GPT, GPTConfig
    from minigpt import reference as ref

    cfg = GPTConfig.preset(args.preset)
    rng = np.random.default_rng(args.seed)
    idx = rng.integers(0, cfg.vocab_size, size=(args.batch, cfg.block_size))
    print(f"config: {cfg}  ({cfg.num_params():,} parameters)")
    for dtype in (np.float32, np.float64):
        with jax.enable_x64(dtype == np.float64):
            params = ref.init_params(cfg, seed=args.seed, dtype=dtype)
            model = GPT.from_params(params, cfg)
            t0 = time.perf_counter()
            logits_ref = ref.forward(params, idx, cfg)
            t1 = time.perf_counter()
            logits_jax = np.asarray(jax.jit(lambda m, x: m(x))(model, idx))
            err = np.max(np.abs(logits_ref - logits_jax))
            loss_ref = float(ref.loss(params, idx[:, :-1], idx[:, 1:], cfg))
            loss_jax = float(model.loss(idx[:, :-1], idx[:, 1:]))
        print(
            f"{np.dtype(dtype).name}: max |logits_ref - logits_jax| = {err:.3e}; "
            f"loss ref {loss_ref:.6f} vs jax {loss_jax:.6f} (ln V = {np.log(cfg.vocab_size):.6f}); "
            f"NumPy forward {1e3 * (t1 - t0):.1f} ms"
        )
    return 0
