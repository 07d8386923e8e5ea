"""One device as a 1×1 mesh: the mesh-sharded jit of the train step vs a plain jit of the same step function.

    PYTHONPATH=. python bench/mesh_jit.py [--preset baby] [--steps 30] [--rounds 10]

Both run in this process, alternating (A, B then B, A) so that they see the same machine load; each round
prints its median step time and the ratio mesh / plain (< 1: the mesh path is faster). The losses must be equal.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from minigpt.config import GPTConfig
from minigpt.training.config import TrainConfig
from minigpt.training.hostmem import hand_over_gil
from minigpt.training.step import Steps, StepSpec, cpu_compiler_options, dropout_key, init_params

BATCH = {"tiny": 16, "baby": 12, "small": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="baby", choices=sorted(BATCH))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round and variant")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    cfg, B = GPTConfig.preset(args.preset, vocab_size=65), BATCH[args.preset]
    mesh_steps = Steps(cfg, StepSpec.of(TrainConfig(preset=args.preset, batch_size=B)))
    plain = jax.jit(mesh_steps.train_fn, donate_argnums=(0, 1), compiler_options=cpu_compiler_options())
    rng = np.random.default_rng(0)
    xs, ys = (rng.integers(0, 65, size=(1, B, cfg.block_size)).astype(np.int32) for _ in range(2))
    key = dropout_key(0)

    def time_it(fn, n: int) -> tuple[float, float]:
        params = jax.tree.map(jnp.asarray, init_params(cfg, 0))
        opt_state = mesh_steps.tx.init(params)
        times = []
        for _ in range(n + 1):
            t0 = time.perf_counter()
            params, opt_state, out = fn(params, opt_state, xs, ys, key)
            float(out["loss"])  # the host sync the training loop does after each step, and its pause
            hand_over_gil(time.perf_counter() - t0)
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:]), float(out["loss"])

    fns = {"mesh": mesh_steps.train_step, "plain": plain}
    for fn in fns.values():
        time_it(fn, 2)  # compile
    ratios = []
    for r in range(args.rounds):
        order = ("mesh", "plain") if r % 2 == 0 else ("plain", "mesh")
        res = {name: time_it(fns[name], args.steps) for name in order}
        assert res["mesh"][1] == res["plain"][1], res  # the same computation
        ratios.append(res["mesh"][0] / res["plain"][0])
        print(f"round {r}: mesh {res['mesh'][0] * 1e3:.2f} ms, plain {res['plain'][0] * 1e3:.2f} ms, "
              f"mesh/plain {ratios[-1]:.3f}", flush=True)  # fmt: skip
    print(f"{args.preset}: median mesh/plain {statistics.median(ratios):.3f} over {args.rounds} rounds")


if __name__ == "__main__":
    main()
