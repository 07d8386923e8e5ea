"""``TrainConfig``: the training hyper-parameters, their one-line docs, and the rules for resuming a run.

Each field's ``doc`` is the single source of its ``minigpt train --help`` line. No JAX here: ``--help`` and
config files are handled before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minigpt.adapters import LoraSpec, spec_from_train
from minigpt.config import PRESETS, GPTConfig

COMPUTE_DTYPES = ("float32", "bfloat16")


def _field(default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the model's shapes live in ``GPTConfig``).

    batch_size is the micro-batch B; one optimizer step sees grad_accum · B · block_size tokens.
    """

    data: str = _field("data/reviews", "prepared data directory (made by 'minigpt prepare')")
    out: str = _field("runs/baby", "run directory: config.json, checkpoints/, metrics.jsonl, loss.png")
    preset: str = _field("baby", f"model shape to start from: one of {', '.join(PRESETS)}")
    batch_size: int = _field(12, "micro-batch B: sequences per forward/backward pass")
    grad_accum: int = _field(1, "micro-batches k accumulated into one optimizer step (exactly a k× batch)")
    # the baby preset on a char-level review corpus: about 4 minutes on 2 CPU cores
    max_steps: int = _field(1500, "optimizer steps to train for (may be raised when resuming)")
    lr: float = _field(2e-3, "peak learning rate, reached after the warmup")
    min_lr: float = _field(2e-4, "learning rate at the end of the cosine decay (at most lr)")
    warmup_steps: int = _field(50, "steps of linear warmup from lr/warmup_steps to lr")
    lr_decay_steps: int = _field(0, "step where the cosine reaches min_lr; 0: max_steps (fixed when the run starts)")
    weight_decay: float = _field(0.1, "AdamW weight decay, on Linear weight matrices only")
    beta1: float = _field(0.9, "AdamW first-moment decay, in [0, 1)")
    beta2: float = _field(0.99, "AdamW second-moment decay, in [0, 1)")
    eps: float = _field(1e-8, "AdamW epsilon in the denominator")
    grad_clip: float = _field(1.0, "clip the gradient's global L2 norm to this; 0: no clipping")
    eval_interval: int = _field(250, "evaluate on the validation batches every this many steps")
    eval_batches: int = _field(20, "validation batches per evaluation (always the same ones)")
    log_interval: int = _field(10, "write a metrics.jsonl line (loss, lr, tokens/s, MFU) every this many steps")
    ckpt_interval: int = _field(250, "save a checkpoint every this many steps (and at the end)")
    keep_checkpoints: int = _field(3, "checkpoints kept on disk, the oldest deleted first")
    seed: int = _field(0, "seed of the initial parameters, the batches and the dropout masks")
    compute_dtype: str = _field("float32", f"compute dtype ({' or '.join(COMPUTE_DTYPES)}); weights stay float32")
    remat: bool = _field(False, "recompute each block's activations in the backward pass (less memory)")
    fast_kernels: bool = _field(
        True, "minigpt.model.kernels: the same numbers as the plain model, less memory and time"
    )
    progress: bool = _field(True, "progress on stderr: a tqdm bar on a terminal, a line every 5 s in a file or log")
    mesh: str = _field("", "device mesh, e.g. 'data=4,fsdp=2' (minigpt.training.distributed); '': one device")
    init_from: str | None = _field(
        None, "start from the weights of a run dir or Hugging Face dir (fresh optimizer, schedule, step 0)"
    )
    lora_rank: int = _field(0, "LoRA rank r: train low-rank adapters on a frozen base (minigpt.adapters); 0: off")
    lora_alpha: float = _field(16.0, "LoRA α: the adapters' update x A B is scaled by α / r")
    lora_targets: str = _field(
        "", "LoRA's layers, e.g. c_attn,c_proj,c_fc,c_gate or mlp.c_proj; '': attn.c_attn,attn.c_proj"
    )

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
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ValueError(f"TrainConfig.init_from must be a directory path or None, got {self.init_from!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        self._check_lora()
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"TrainConfig.compute_dtype must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}")

    def _check_lora(self) -> None:
        rank = self.lora_rank
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ValueError(f"TrainConfig.lora_rank must be a non-negative integer (0: LoRA off), got {rank!r}")
        if rank == 0 and self.lora_targets:
            raise ValueError(f"--lora-targets {self.lora_targets} needs --lora-rank r > 0 (rank 0 means LoRA is off)")
        if rank > 0:
            _ = self.lora  # unknown targets or a bad alpha: its one-line ValueError

    @property
    def lora(self) -> LoraSpec | None:
        """The run's ``LoraSpec`` (rank, α, targets), or None when ``lora_rank`` is 0."""
        return spec_from_train(dataclasses.asdict(self))

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
TRAIN_DOCS = {f.name: f.metadata["doc"] for f in dataclasses.fields(TrainConfig)}


def pin_decay(tcfg: TrainConfig) -> TrainConfig:
    """``lr_decay_steps`` fixed to the run's first ``max_steps``, so resuming with more steps keeps the schedule."""
    return tcfg if tcfg.lr_decay_steps else tcfg.replace(lr_decay_steps=tcfg.max_steps)


def resume_config(saved: dict[str, Any], cfg: GPTConfig, tcfg: TrainConfig, run_dir: str | Path) -> TrainConfig:
    """``tcfg`` for continuing the checkpoint whose meta record is ``saved``; ValueError if the run would change.

    An unset ``lr_decay_steps`` takes the saved one. Only ``RESUMABLE_CHANGES`` (and ``EQUIVALENT_CHANGES``) may
    differ from the checkpoint; anything else would not continue the same optimisation.
    """
    if tcfg.lr_decay_steps == 0:
        tcfg = tcfg.replace(lr_decay_steps=saved["train"]["lr_decay_steps"])
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
    return tcfg


def read_settings(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
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
            raise ValueError(f"{path}: unknown setting {key!r}{suggest(key)}")
    for key in model:
        if key not in MODEL_FIELDS:
            raise ValueError(f"{path}: unknown model setting {key!r}; valid: {MODEL_FIELDS}")
    for key in train:
        if key not in TRAIN_FIELDS:
            raise ValueError(f"{path}: unknown train setting {key!r}{suggest(key)}")
    return model, train


def suggest(name: str) -> str:
    """'; did you mean X?' for the closest setting name (or the list of all of them)."""
    close = difflib.get_close_matches(name, MODEL_FIELDS + TRAIN_FIELDS, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid settings: {MODEL_FIELDS + TRAIN_FIELDS}"
