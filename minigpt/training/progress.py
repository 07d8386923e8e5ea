"""How fast training goes: tokens/s and MFU per log line, and the tqdm bar (plain lines when stderr is a file or a
pipe: ``minigpt.training.progress_lines``).

MFU (model FLOPs utilisation) = FLOPs/token · tokens/s ÷ the measured peak of a jitted float32 matmul.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from tqdm import tqdm

from minigpt.config import GPTConfig
from minigpt.training.config import TrainConfig
from minigpt.training.optim import learning_rate
from minigpt.training.progress_lines import ProgressLines, kept_line_by_line


def flops_per_token(cfg: GPTConfig) -> float:
    """6N + 12·L·C·T (forward + backward), N = parameters without wpe (a lookup, not a product; rotary models
    have none; wte counts: it is also the tied lm head)."""
    n = cfg.num_params() - (cfg.block_size * cfg.n_embd if cfg.pos == "learned" else 0)
    return 6.0 * n + 12.0 * cfg.n_layer * cfg.n_embd * cfg.block_size


@functools.lru_cache(maxsize=1)
def matmul_peak_flops(n: int = 1024, repeats: int = 5) -> float:
    """Measured FLOP/s of a jitted float32 (n, n) @ (n, n) matmul on the default device: 2n³ / best time."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    f(a, a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


class Progress:
    """Per-step records for ``metrics.jsonl`` and the progress bar; speed counts training time only.

    The first step of a process includes compilation, so speed is measured from the end of it; time spent in
    evaluations and saves (``paused``) is left out.
    """

    def __init__(self, cfg: GPTConfig, tcfg: TrainConfig, start: int) -> None:
        self.tcfg, self.start = tcfg, start
        self.tokens_per_step = tcfg.grad_accum * tcfg.batch_size * cfg.block_size
        self.flops, self.peak = flops_per_token(cfg), matmul_peak_flops()
        self.t_start = self.t_log = time.perf_counter()
        self.step_log = start
        self.bar = None
        if tcfg.progress and kept_line_by_line(sys.stderr):  # a log: plain lines, not the bar's \r frames
            self.bar = ProgressLines(tcfg.max_steps, start, file=sys.stderr)
        elif tcfg.progress:
            self.bar = tqdm(total=tcfg.max_steps, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    def record(self, step: int, loss: float, grad_norm: float) -> tuple[dict[str, Any], bool]:
        """({step, loss, lr, grad_norm[, tok_per_s, mfu, elapsed_s]}, whether it is a log line) after ``step``."""
        record = {"step": step, "loss": loss, "lr": float(learning_rate(step - 1, self.tcfg)), "grad_norm": grad_norm}
        logged = step % self.tcfg.log_interval == 0 or step == self.tcfg.max_steps
        if logged:
            now = time.perf_counter()
            tok_s = (step - self.step_log) * self.tokens_per_step / max(now - self.t_log, 1e-9)
            record.update(tok_per_s=tok_s, mfu=tok_s * self.flops / self.peak, elapsed_s=now - self.t_start)
            self.t_log, self.step_log = now, step
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", mfu=f"{100 * record['mfu']:.1f}%")
        if step == self.start + 1:  # the first step includes compilation: measure speed from here on
            self.t_log, self.step_log = time.perf_counter(), step
        if self.bar is not None:
            self.bar.update(1)
        return record, logged

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time inside is not training time (evaluations, checkpoints)."""
        t_pause = time.perf_counter()
        try:
            yield
        finally:
            self.t_log += time.perf_counter() - t_pause

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
