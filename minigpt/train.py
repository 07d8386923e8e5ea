"""Training the Flax GPT with Optax and Orbax: ``minigpt train``.

One optimizer step, a pure jitted function of (params, opt_state, batch, key):

    g  = Σ_i ∇ Σ_t nll_i,t / Σ_i n_i          gradient of the mean token loss over all k micro-batches
    g ← g · min(1, clip / ‖g‖₂)              global-norm clipping, once, on the accumulated gradient
    θ ← AdamW(θ, g; lr(step), wd · mask)     decay only Linear weight matrices (``params.weight_decay_mask``)

``lr(step)`` rises linearly for ``warmup_steps`` then follows a cosine down to ``min_lr`` at
``lr_decay_steps``. Batches (``data.BatchSampler``) and dropout keys (``fold_in(key, step)``) are pure
functions of the step, so a run resumed from a checkpoint repeats the uninterrupted run bit for bit.

Run directory::

    RUN/config.json        {"model": GPTConfig, "train": TrainConfig}
    RUN/checkpoints/<s>/   Orbax checkpoints (``minigpt.checkpoint``), the last ``keep_checkpoints``
    RUN/metrics.jsonl      one JSON object per log line (train) and per evaluation (val)
    RUN/loss.png           the loss curves (``minigpt plot RUN``)
    RUN/tokenizer/         copied from the data directory when it has one
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minigpt import hostmem
from minigpt.config import PRESETS, GPTConfig
from minigpt.params import Params, weight_decay_mask

COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the model's shapes live in ``GPTConfig``).

    batch_size is the micro-batch B; one optimizer step sees grad_accum · B · block_size tokens.
    """

    data: str = "data/reviews"
    out: str = "runs/baby"
    preset: str = "baby"
    batch_size: int = 12
    grad_accum: int = 1
    max_steps: int = 1500  # the baby preset on a char-level review corpus: about 4 minutes on 2 CPU cores
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 50
    lr_decay_steps: int = 0  # 0: decay until max_steps (fixed when the run is created)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 250
    eval_batches: int = 20
    log_interval: int = 10
    ckpt_interval: int = 250
    keep_checkpoints: int = 3
    seed: int = 0
    compute_dtype: str = "float32"
    remat: bool = False
    fast_kernels: bool = True  # minigpt.kernels: same numbers as the plain model, less memory and time
    progress: bool = True
    mesh: str = ""  # e.g. "data=4,fsdp=2" (minigpt.distributed); "" = one device

    def __post_init__(self) -> None:
        positive = ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_batches", "log_interval")
        for name in (*positive, "ckpt_interval", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "lr_decay_steps", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative integer, got {value!r}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative number, got {value!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr={self.min_lr} exceeds lr={self.lr}; the cosine decays from lr down")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"TrainConfig.compute_dtype must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}")

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps or self.max_steps

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# Fields that may change when a run is resumed: they do not alter the optimisation path.
RESUMABLE_CHANGES = frozenset(
    {"data", "out", "max_steps", "eval_interval", "eval_batches", "log_interval", "ckpt_interval"}
    | {"keep_checkpoints", "progress", "mesh"}
)
# Fields that enter the compiled step but not the mathematics: a run may resume with them changed.
EQUIVALENT_CHANGES = frozenset({"fast_kernels"})
TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
MODEL_FIELDS = [f.name for f in dataclasses.fields(GPTConfig)]


# -- the learning rate ---------------------------------------------------------------------------
def learning_rate(step: Any, tcfg: TrainConfig) -> Any:
    """lr(s) = lr·(s+1)/W for s < W;  min_lr + ½(lr − min_lr)(1 + cos(π·(s−W)/(D−W))) up to D;  min_lr after.

    W = warmup_steps, D = decay_steps. Works on JAX scalars (inside Optax) and on Python ints (for logging,
    computed with NumPy so the training loop does not dispatch device work for it).
    """
    if isinstance(step, (int, np.integer)):
        xp = np
    else:
        import jax.numpy as xp
    W, D = tcfg.warmup_steps, max(tcfg.decay_steps, tcfg.warmup_steps + 1)
    s = xp.asarray(step, xp.float32)
    warm = tcfg.lr * (s + 1) / max(W, 1)
    progress = xp.clip((s - W) / (D - W), 0.0, 1.0)
    cosine = tcfg.min_lr + 0.5 * (tcfg.lr - tcfg.min_lr) * (1 + xp.cos(math.pi * progress))
    return xp.where(s < W, warm, cosine)


def global_norm(tree: Any, fused: bool = True) -> Any:
    """‖g‖₂ = √(Σ_leaves Σ g²) (``optax.global_norm``).

    ``fused``: one reduction over all leaves laid end to end. XLA:CPU then runs one loop, where a sum per leaf
    costs two or three small kernels per leaf (≈150 of a ``baby`` step's ≈640). Not for sharded leaves: laying
    them end to end would gather every shard on every device; ``fused=False`` sums each leaf where it lives.
    """
    import jax
    import jax.numpy as jnp
    import optax

    if not fused:
        return optax.global_norm(tree)
    leaves = jax.tree.leaves(tree)
    dtype = jnp.result_type(jnp.float32, *leaves)  # at least float32; float64 stays float64
    flat = jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves])  # (N,)
    return jnp.sqrt(jnp.sum(flat * flat))


def clip_by_global_norm(max_norm: float, fused: bool = True) -> Any:
    """``optax.clip_by_global_norm`` (same state, same update: g · c/‖g‖ when ‖g‖ ≥ c) with ``global_norm``."""
    import jax
    import jax.numpy as jnp
    import optax

    base = optax.clip_by_global_norm(max_norm)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        norm = global_norm(updates, fused)
        # one scalar factor: a multiply XLA fuses into AdamW's loops (optax's per-element divide is a loop of its own)
        factor = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda g: g * factor.astype(g.dtype), updates), state

    return optax.GradientTransformation(base.init, update)


def make_optimizer(tcfg: TrainConfig, params: Params, fused_norm: bool = True) -> Any:
    """``chain(clip_by_global_norm, adamw(lr(step), weight_decay, mask=weight_decay_mask))``.

    The state is optax's for that chain whatever ``fused_norm`` (see ``global_norm``) says.
    """
    import optax

    adamw = optax.adamw(
        functools.partial(learning_rate, tcfg=tcfg),
        b1=tcfg.beta1,
        b2=tcfg.beta2,
        eps=tcfg.eps,
        weight_decay=tcfg.weight_decay,
        mask=weight_decay_mask(params),
    )
    return optax.chain(clip_by_global_norm(tcfg.grad_clip, fused_norm), adamw) if tcfg.grad_clip > 0 else adamw


# -- the jitted functions ------------------------------------------------------------------------
def token_nll(logits: Any, targets: Any, ignore_index: int = -1) -> tuple[Any, Any]:
    """(Σ nll, n): summed −log softmax(logits)[target] over kept positions, and their count n.

    Sums, not means, so that micro-batches with different numbers of kept tokens combine exactly:
    the batch loss is Σ_i sum_i / Σ_i n_i.
    """
    import jax.numpy as jnp

    from minigpt import model

    return jnp.sum(model.token_nll(logits, targets, ignore_index)), jnp.sum(targets != ignore_index)


@dataclass(frozen=True)
class StepSpec:
    """Everything that shapes the compiled step; jitted functions are cached per (GPTConfig, StepSpec)."""

    tcfg: TrainConfig

    @classmethod
    def of(cls, tcfg: TrainConfig) -> StepSpec:
        # Fields that do not enter the computation are reset so that runs differing only there share compiles
        # (the decay horizon is pinned first: by default it is max_steps).
        tcfg = tcfg.replace(lr_decay_steps=tcfg.decay_steps)
        return cls(tcfg.replace(**{name: TrainConfig.__dataclass_fields__[name].default for name in RESUMABLE_CHANGES}))


class Steps:
    """The jitted ``train_step`` and ``eval_step`` for one model config and step spec.

    The parameters are kept by us in the reference layout; inside the jitted functions
    ``minigpt.model.apply`` rebuilds the model from them (the static graph is split once per
    config), so the steps are pure functions of arrays.
    """

    def __init__(self, cfg: GPTConfig, spec: StepSpec) -> None:
        import jax
        import jax.numpy as jnp

        from minigpt.checkpoint import abstract_params
        from minigpt.model import apply

        tcfg = spec.tcfg
        compute = jnp.bfloat16 if tcfg.compute_dtype == "bfloat16" else jnp.float32

        def loss_sum(params, x, y, key):
            logits = apply(params, x, cfg, train=True, key=key, dtype=compute, fast=tcfg.fast_kernels, remat=tcfg.remat)
            return token_nll(logits, y)

        def divisor(count):
            return jnp.maximum(count, 1).astype(jnp.float32)  # kept tokens; 1 when none is kept

        def loss_mean(params, x, y, key):
            total, count = loss_sum(params, x, y, key)
            return total / divisor(count), (total, count)

        grad_fn = jax.value_and_grad(loss_sum, has_aux=True)
        # One micro-batch: differentiate the mean itself, so that 1/n scales the logits' gradient once
        # instead of every parameter's gradient afterwards (52 fewer kernels at ``baby``).
        mean_grad_fn = jax.value_and_grad(loss_mean, has_aux=True)
        self.tx = make_optimizer(tcfg, abstract_params(cfg))

        def make_train_step(fused_norm: bool) -> Callable[..., Any]:
            tx = self.tx if fused_norm else make_optimizer(tcfg, abstract_params(cfg), fused_norm=False)
            return functools.partial(train_step, tx=tx, fused_norm=fused_norm)

        def train_step(params, opt_state, xs, ys, key, *, tx, fused_norm):
            """xs, ys: (k, B, T) micro-batches; returns new (params, opt_state) and {loss, grad_norm}."""

            def micro(carry, inputs):
                grads, total, count = carry
                x, y, i = inputs
                (s, n), g = grad_fn(params, x, y, jax.random.fold_in(key, i))
                return (jax.tree.map(jnp.add, grads, g), total + s, count + n), None

            if xs.shape[0] == 1:  # no accumulation: a loop would only add copies of every parameter
                (_, (total, count)), grads = mean_grad_fn(params, xs[0], ys[0], jax.random.fold_in(key, 0))
            else:
                zeros = jax.tree.map(jnp.zeros_like, params)
                init = (zeros, jnp.float32(0), jnp.int32(0))
                (grads, total, count), _ = jax.lax.scan(micro, init, (xs, ys, jnp.arange(xs.shape[0])))
                grads = jax.tree.map(lambda g: g / divisor(count), grads)
            n = divisor(count)
            grad_norm = global_norm(grads, fused_norm)  # the same expression as the clip's: XLA computes it once
            updates, opt_state = tx.update(grads, opt_state, params)
            params = jax.tree.map(jnp.add, params, updates)
            return params, opt_state, {"loss": total / n, "grad_norm": grad_norm}

        def eval_step(params, x, y):
            return token_nll(apply(params, x, cfg, dtype=compute, fast=tcfg.fast_kernels), y)

        # Un-jitted, for minigpt.distributed: the sharded step sums each gradient shard where it lives.
        self.train_fn, self.sharded_train_fn = make_train_step(True), make_train_step(False)
        self.eval_fn = eval_step
        # Parameters and optimizer state are donated: XLA writes the new ones into the old buffers instead of
        # allocating fresh ones every step (3× the parameters), which also makes the heap fragment less
        # around XLA's per-step temporaries (small, 10 steps: peak RSS 2.4 → 1.2 GiB). Callers must not reuse the
        # params / opt_state they passed in (pass copies if they need them).
        options = cpu_compiler_options() if tcfg.fast_kernels else None
        self.train_step = jax.jit(self.train_fn, donate_argnums=(0, 1), compiler_options=options)
        self.eval_step = jax.jit(eval_step, compiler_options=options)


# XLA:CPU hands dots to YNNPACK by default, which runs a *batched* dot (attention's (B·H) small
# products) on one thread; its Eigen path splits them over all cores: attention is ~1.6x faster, the 2-D
# GEMMs are the same. Reductions stay with YNNPACK (≈30 % faster than XLA's own loops here). Re-measured
# with 64-query attention blocks: XLA's defaults gave 35.0 ms per ``baby`` step in 10 of 12 processes but
# 49 ms (the whole run) in the other 2; with Eigen's dots 36.2 ms in 12 of 12.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}


@functools.lru_cache(maxsize=1)
def cpu_compiler_options() -> dict[str, str] | None:
    """``CPU_COMPILER_OPTIONS`` when the default backend is a CPU whose XLA knows them, else None."""
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        return None
    try:  # the option is experimental: a later jaxlib may drop it, then we fall back to the defaults
        jax.jit(lambda a: a @ a, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.ones((2, 2))).compile()
    except Exception:  # noqa: BLE001 - any failure means "not supported here"
        return None
    return dict(CPU_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=16)
def compiled_steps(cfg: GPTConfig, spec: StepSpec) -> Steps:
    """Cached ``Steps``: runs with the same shapes and optimiser settings share their compiled code."""
    return Steps(cfg, spec)


# Dropout masks come from XLA's RngBitGenerator rather than threefry: on CPU threefry makes the step
# several times slower to compile, and masks need no cryptographic quality (T5X and MaxText make the
# same choice). Still a pure function of the key, so resumed runs repeat exactly.
DROPOUT_RNG = "unsafe_rbg"


def dropout_key(seed: int) -> Any:
    """The run's base dropout key; step s uses fold_in(key, s), micro-batch i fold_in(·, i)."""
    import jax

    return jax.random.key(seed, impl=DROPOUT_RNG)


def init_params(cfg: GPTConfig, seed: int) -> Params:
    """Fresh float32 parameters, GPT-2's initialisation (``minigpt.reference.init_params``), reference layout."""
    from minigpt.reference import init_params as reference_init

    return reference_init(cfg, seed=seed, dtype=np.float32)


# -- MFU -----------------------------------------------------------------------------------------
def flops_per_token(cfg: GPTConfig) -> float:
    """6N + 12·L·C·T (forward + backward), N = parameters without wpe (wte counts: it is also the lm head)."""
    n = cfg.num_params() - cfg.block_size * cfg.n_embd
    return 6.0 * n + 12.0 * cfg.n_layer * cfg.n_embd * cfg.block_size


@functools.lru_cache(maxsize=1)
def matmul_peak_flops(n: int = 1024, repeats: int = 5) -> float:
    """Measured FLOP/s of a jitted float32 (n, n) @ (n, n) matmul on the default device: 2n³ / best time."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    f(a, a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


# -- data ----------------------------------------------------------------------------------------
def load_data(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(train tokens, val tokens, meta) from ``DIR/train.npy``, ``DIR/val.npy``, ``DIR/meta.json``."""
    d = Path(data_dir)
    for name in ("train.npy", "val.npy", "meta.json"):
        if not (d / name).is_file():
            raise FileNotFoundError(
                f"{d / name} not found; --data must be a directory made by 'minigpt prepare' "
                "(train.npy, val.npy, meta.json)"
            )
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    vocab = meta.get("vocab_size")
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1:
        raise ValueError(f"{d / 'meta.json'} must hold a positive integer 'vocab_size', got {vocab!r}")
    splits = []
    for name in ("train", "val"):
        tokens = np.load(d / f"{name}.npy", allow_pickle=False)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer) or tokens.size == 0:
            raise ValueError(f"{d / name}.npy must be a non-empty 1-D integer array, got {tokens.dtype} {tokens.shape}")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"{d / name}.npy holds token id {lo if lo < 0 else hi} outside 0..{vocab - 1} (meta.json)")
        splits.append(tokens)
    return splits[0], splits[1], meta


def _check_data_fits(train: np.ndarray, val: np.ndarray, cfg: GPTConfig, tcfg: TrainConfig) -> None:
    T = cfg.block_size
    for name, tokens in (("train", train), ("val", val)):
        if len(tokens) < T + 1:
            raise ValueError(
                f"block_size={T} is larger than the {name} split allows: it has {len(tokens)} tokens and one sample "
                f"needs block_size + 1 = {T + 1}; use --block_size {max(1, len(tokens) - 1)} or less, or more data"
            )
    windows = len(train) - T
    if tcfg.batch_size > windows:
        raise ValueError(
            f"batch_size={tcfg.batch_size} is larger than the data: the train split has only {windows} distinct "
            f"windows of block_size={T}; use --batch_size {windows} or less, or more data"
        )


# -- files of a run ------------------------------------------------------------------------------
def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_config(run_dir: Path, cfg: GPTConfig, tcfg: TrainConfig) -> None:
    text = json.dumps({"model": cfg.to_dict(), "train": dataclasses.asdict(tcfg)}, indent=2, sort_keys=True)
    _write_atomic(run_dir / "config.json", text + "\n")


def read_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, train overrides) from a JSON file: ``{"model": {..}, "train": {..}}`` or flat keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    model = dict(data.pop("model", {}))
    train = dict(data.pop("train", {}))
    for key, value in data.items():
        if key in MODEL_FIELDS:
            model[key] = value
        elif key in TRAIN_FIELDS:
            train[key] = value
        else:
            raise ValueError(f"{path}: unknown setting {key!r}{_suggest(key)}")
    for key in model:
        if key not in MODEL_FIELDS:
            raise ValueError(f"{path}: unknown model setting {key!r}; valid: {MODEL_FIELDS}")
    for key in train:
        if key not in TRAIN_FIELDS:
            raise ValueError(f"{path}: unknown train setting {key!r}{_suggest(key)}")
    return model, train


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, MODEL_FIELDS + TRAIN_FIELDS, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid settings: {MODEL_FIELDS + TRAIN_FIELDS}"


class _Metrics:
    """Appends JSON lines to ``RUN/metrics.jsonl`` (flushed, so a crash loses at most the current line)."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            # Lines logged after the checkpoint we resume from are redone; drop them (atomically).
            kept = [line for line in path.read_text(encoding="utf-8").splitlines() if _line_step(line) <= resume_step]
            _write_atomic(path, "".join(line + "\n" for line in kept))
        elif path.exists():
            path.unlink()
        self.file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _line_step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN/metrics.jsonl`` in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is {run_dir} a run directory made by 'minigpt train'?")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class _StopSignal:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and exits. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# -- the loop ------------------------------------------------------------------------------------
def evaluate(steps: Steps, params: Params, sampler: Any, n_batches: int) -> float:
    """Mean token loss over the fixed batches 0..n_batches-1 of ``sampler`` (dropout off)."""
    total, count = 0.0, 0
    for i in range(n_batches):
        x, y = sampler.batch(i)
        s, n = steps.eval_step(params, x, y)
        total += float(s)
        count += int(n)
    return total / count


def train(
    cfg: GPTConfig,
    tcfg: TrainConfig,
    *,
    resume: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``cfg`` with ``tcfg`` into ``tcfg.out``; returns a summary dict.

    summary["status"] is "done", "interrupted" (SIGINT/SIGTERM: saved, resumable) or "nan" (stopped at the
    first non-finite loss or gradient; the last checkpoint is the last good state). ``callback(step, record)``
    is called after every optimizer step (for notebooks and tests).
    """
    import jax
    import jax.numpy as jnp

    from minigpt import checkpoint
    from minigpt.data import BatchSampler

    run_dir = Path(tcfg.out)
    ckpt_dir = run_dir / "checkpoints"
    if tcfg.lr_decay_steps == 0 and not resume:
        tcfg = tcfg.replace(lr_decay_steps=tcfg.max_steps)  # fixed now: resuming with more steps keeps the schedule
    train_tokens, val_tokens, meta = load_data(tcfg.data)
    if meta["vocab_size"] != cfg.vocab_size:
        raise ValueError(
            f"the data's vocab_size is {meta['vocab_size']} ({Path(tcfg.data) / 'meta.json'}) but the model has "
            f"vocab_size={cfg.vocab_size}; leave vocab_size unset so it is taken from the data"
        )
    _check_data_fits(train_tokens, val_tokens, cfg, tcfg)

    existing = checkpoint.latest_step(ckpt_dir)
    if not resume and existing is not None:
        raise ValueError(
            f"{run_dir} already holds checkpoints (latest step {existing}); pass --resume to continue it, "
            "or choose another --out (nothing was overwritten)"
        )
    if resume and existing is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {ckpt_dir}; start a new run without --resume")

    steps = compiled_steps(cfg, StepSpec.of(tcfg))
    if tcfg.mesh:
        from minigpt.distributed import sharded_steps

        steps = sharded_steps(steps, cfg, tcfg.mesh, tcfg.batch_size)
    if resume:
        saved = checkpoint.restore_meta(ckpt_dir)
        if tcfg.lr_decay_steps == 0:
            tcfg = tcfg.replace(lr_decay_steps=saved["train"]["lr_decay_steps"])
        _check_resumable(saved, cfg, tcfg, run_dir)
        if tcfg.mesh:
            params, opt_state, saved = steps.restore(ckpt_dir)  # from any mesh into this one
        else:
            abstract_opt = jax.eval_shape(steps.tx.init, checkpoint.abstract_params(cfg))
            params, opt_state, saved = checkpoint.restore(ckpt_dir, cfg, abstract_opt)
        start = int(saved["step"])
        key = jax.random.wrap_key_data(jnp.asarray(saved["dropout_key"], dtype=jnp.uint32), impl=DROPOUT_RNG)
        log(f"resuming {run_dir} from step {start}")
    elif tcfg.mesh:
        params = steps.place_params(init_params(cfg, tcfg.seed))
        opt_state = steps.init_opt_state(params)
        start, key = 0, dropout_key(tcfg.seed)
    else:
        params = jax.tree.map(jnp.asarray, init_params(cfg, tcfg.seed))
        opt_state = steps.tx.init(params)
        start = 0
        key = dropout_key(tcfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run_dir, cfg, tcfg)
    tokenizer_src = Path(tcfg.data) / "tokenizer"
    if tokenizer_src.is_dir():
        shutil.copytree(tokenizer_src, run_dir / "tokenizer", dirs_exist_ok=True)

    k, B, T = tcfg.grad_accum, tcfg.batch_size, cfg.block_size
    train_sampler = BatchSampler(train_tokens, T, B, seed=tcfg.seed)
    val_sampler = BatchSampler(val_tokens, T, B, seed=1_234_567)  # the same fixed val batches at every eval
    mngr = checkpoint.manager(ckpt_dir, keep=tcfg.keep_checkpoints)
    metrics = _Metrics(run_dir / "metrics.jsonl", start if resume else None)
    tokens_per_step = k * B * T
    peak = matmul_peak_flops()
    fpt = flops_per_token(cfg)

    def meta_record(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "seed": tcfg.seed,
            "dropout_key": np.asarray(jax.random.key_data(key)).tolist(),
            "model": cfg.to_dict(),
            "train": dataclasses.asdict(tcfg),
            "tokenizer": "tokenizer" if (run_dir / "tokenizer").is_dir() else None,
            "data": {"sampler_seed": tcfg.seed, "next_batch": step * k},
        }

    def save(step: int) -> None:
        checkpoint.save(mngr, step, params, opt_state, meta_record(step))

    def run_eval(step: int) -> float:
        val = evaluate(steps, params, val_sampler, tcfg.eval_batches)
        metrics.write({"step": step, "val_loss": val, "val_ppl": math.exp(min(val, 700.0))})
        return val

    bar = None
    if tcfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=tcfg.max_steps, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)
    status, step, loss, val = "done", start, math.nan, math.nan
    t_start = time.perf_counter()
    t_log, step_log = t_start, start
    try:
        with _StopSignal() as stop:
            if start == 0:
                val = run_eval(0)
            while step < tcfg.max_steps:
                batches = [train_sampler.batch(step * k + i) for i in range(k)]
                xs = np.stack([b[0] for b in batches])  # (k, B, T)
                ys = np.stack([b[1] for b in batches])  # (k, B, T)
                step_key = jax.random.fold_in(key, step)
                t_step = time.perf_counter()
                params, opt_state, out = steps.train_step(params, opt_state, xs, ys, step_key)
                loss, grad_norm = float(out["loss"]), float(out["grad_norm"])
                hostmem.hand_over_gil(time.perf_counter() - t_step)
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    status = "nan"
                    last = checkpoint.latest_step(ckpt_dir)
                    log(
                        f"stopped: non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} at step "
                        f"{step + 1} (loss {loss}, grad norm {grad_norm}); the last good checkpoint is step {last} in "
                        f"{ckpt_dir}. Lower --lr or raise --warmup_steps, then start again or resume from it."
                    )
                    break
                step += 1
                lr = float(learning_rate(step - 1, tcfg))
                record = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm}
                if step % tcfg.log_interval == 0 or step == tcfg.max_steps:
                    now = time.perf_counter()
                    tok_s = (step - step_log) * tokens_per_step / max(now - t_log, 1e-9)
                    record.update(tok_per_s=tok_s, mfu=tok_s * fpt / peak, elapsed_s=now - t_start)
                    metrics.write(record)
                    t_log, step_log = now, step
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", mfu=f"{100 * record['mfu']:.1f}%")
                if step == start + 1:  # the first step includes compilation: measure speed from here on
                    t_log, step_log = time.perf_counter(), step
                if bar is not None:
                    bar.update(1)
                t_pause = time.perf_counter()
                if step % tcfg.eval_interval == 0 and step < tcfg.max_steps:
                    val = run_eval(step)
                    if bar is not None:
                        bar.write(f"step {step}: train loss {loss:.4f}, val loss {val:.4f}")
                if step % tcfg.ckpt_interval == 0 or step == tcfg.max_steps:
                    save(step)
                t_log += time.perf_counter() - t_pause  # tokens/s counts training time only
                if callback is not None:
                    callback(step, record)
                if stop.received is not None:
                    status = "interrupted"
                    if checkpoint.latest_step(ckpt_dir) != step:
                        save(step)
                    break
            if status == "done":
                if checkpoint.latest_step(ckpt_dir) != step:
                    save(step)
                val = run_eval(step)
    finally:
        if bar is not None:
            bar.close()
        metrics.close()
        mngr.close()
    wall = time.perf_counter() - t_start
    summary = {
        "status": status,
        "step": step,
        "train_loss": loss,
        "val_loss": val,
        "val_ppl": math.exp(min(val, 700.0)) if math.isfinite(val) else math.nan,
        "wall_s": wall,
        "checkpoint": str(ckpt_dir / str(checkpoint.latest_step(ckpt_dir))),
        "run_dir": str(run_dir),
    }
    try:
        from minigpt.plot import plot_run

        summary["plot"] = str(plot_run(run_dir))
    except (ValueError, FileNotFoundError) as e:  # no points to plot yet
        log(f"no plot: {e}")
    return summary


def _check_resumable(saved: dict[str, Any], cfg: GPTConfig, tcfg: TrainConfig, run_dir: Path) -> None:
    problems = []
    saved_model = GPTConfig.from_dict(saved["model"])
    for name in MODEL_FIELDS:
        if getattr(saved_model, name) != getattr(cfg, name):
            problems.append(f"{name}: checkpoint has {getattr(saved_model, name)!r}, requested {getattr(cfg, name)!r}")
    for name, value in saved["train"].items():
        if name not in RESUMABLE_CHANGES | EQUIVALENT_CHANGES and getattr(tcfg, name) != value:
            problems.append(f"{name}: checkpoint has {value!r}, requested {getattr(tcfg, name)!r}")
    if problems:
        raise ValueError(
            f"cannot resume {run_dir} with a different configuration ({'; '.join(problems)}). Resume without these "
            f"options (only {sorted(RESUMABLE_CHANGES | EQUIVALENT_CHANGES)} may change) or start a new run with "
            "another --out; nothing was overwritten"
        )


# -- loading a trained model ---------------------------------------------------------------------
def load_run(run_dir: str | Path, step: int | None = None) -> tuple[GPTConfig, Params, Any]:
    """(GPTConfig, params as NumPy arrays in the reference layout, tokenizer or None) of a run's checkpoint.

    ``step=None`` loads the latest checkpoint. The tokenizer is ``minigpt.tokenizers.load_tokenizer(RUN/tokenizer)``
    when the run has that folder.
    """
    from minigpt import checkpoint

    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"{ckpt_dir} not found; is {run_dir} a run directory made by 'minigpt train'?")
    meta = checkpoint.restore_meta(ckpt_dir, step)
    cfg = GPTConfig.from_dict(meta["model"])
    params, _, _ = checkpoint.restore(ckpt_dir, cfg, None, meta["step"])
    tokenizer = None
    if (run_dir / "tokenizer").is_dir():
        from minigpt.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run_dir / "tokenizer")
    return cfg, checkpoint.to_numpy(params), tokenizer


# -- command line --------------------------------------------------------------------------------
def _parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigpt train",
        description="Train a GPT on a prepared data directory (see 'minigpt prepare').",
        epilog="Every GPTConfig and TrainConfig field is an option: --n_layer 4 --lr 3e-4 (or --n-layer, --max-steps).",
    )
    parser.add_argument("--config", help="JSON file of settings ({'model': {...}, 'train': {...}} or flat keys)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        kind = _parse_bool if f.type in ("bool", bool) else type(getattr(defaults, f.name))
        flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        extra = {"nargs": "?", "const": True} if kind is _parse_bool else {}
        help_text = f"(default {f.default})"
        parser.add_argument(
            *flags, dest=f"train.{f.name}", type=kind, default=None, help=help_text, metavar="X", **extra
        )
    for f in dataclasses.fields(GPTConfig):
        kind = _parse_bool if f.name == "bias" else (float if f.type in ("float", float) else int)
        flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        extra = {"nargs": "?", "const": True} if kind is _parse_bool else {}
        parser.add_argument(
            *flags, dest=f"model.{f.name}", type=kind, default=None, help="(model)", metavar="X", **extra
        )
    return parser


def resolve(argv: list[str]) -> tuple[GPTConfig, TrainConfig, bool]:
    """(model config, train config, resume) from CLI arguments; preset < --config file < flags < data's vocab.

    With --resume, the run's saved config.json is the base and only explicitly given settings apply.
    """
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        name = unknown[0].lstrip("-").split("=")[0].replace("-", "_")
        raise ValueError(f"unknown option {unknown[0]!r}{_suggest(name)} (see 'minigpt train --help')")
    model_over, train_over = read_config(args.config) if args.config else ({}, {})
    for dest, value in vars(args).items():
        if value is None or "." not in dest:
            continue
        section, name = dest.split(".", 1)
        (model_over if section == "model" else train_over)[name] = value
    if args.resume:
        out = Path(train_over.get("out", TrainConfig.out))
        config_path = out / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"--resume: {config_path} not found; pass --out with the run directory to resume")
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        cfg = GPTConfig.from_dict({**saved["model"], **model_over})
        tcfg = TrainConfig(**{**saved["train"], **train_over})
        return cfg, tcfg, True
    tcfg = TrainConfig(**train_over)
    _, _, meta = load_data(tcfg.data)
    if "vocab_size" in model_over and model_over["vocab_size"] != meta["vocab_size"]:
        raise ValueError(
            f"--vocab_size {model_over['vocab_size']} disagrees with the data's vocab_size "
            f"{meta['vocab_size']}; omit it"
        )
    cfg = GPTConfig.preset(tcfg.preset, **{**model_over, "vocab_size": meta["vocab_size"]})
    return cfg, tcfg, False


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, tcfg, resume = resolve(list(sys.argv[1:] if argv is None else argv))
        print(f"model: {cfg} ({cfg.num_params():,} parameters)")
        print(
            f"training: {tcfg.max_steps} steps of {tcfg.grad_accum}×{tcfg.batch_size}×{cfg.block_size} tokens, "
            f"lr {tcfg.lr} → {tcfg.min_lr}, {tcfg.compute_dtype}{', remat' if tcfg.remat else ''}; run dir {tcfg.out}"
        )
        summary = train(cfg, tcfg, resume=resume)
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt train: error: {e}", file=sys.stderr)
        return 2
    minutes, seconds = divmod(summary["wall_s"], 60)
    if summary["status"] == "nan":
        return 1
    print(
        f"{summary['status']} at step {summary['step']} in {int(minutes)}m{seconds:04.1f}s: "
        f"train loss {summary['train_loss']:.4f}, val loss {summary['val_loss']:.4f} "
        f"(perplexity {summary['val_ppl']:.2f})"
    )
    print(f"checkpoint: {summary['checkpoint']}")
    if "plot" in summary:
        print(f"loss curve: {summary['plot']}")
    if summary["status"] == "interrupted":
        print(f"resume with: minigpt train --resume --out {tcfg.out}")
    else:
        print(f"sample with: minigpt sample {tcfg.out}")
    return 0
