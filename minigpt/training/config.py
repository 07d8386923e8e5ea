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
from minigpt.config import PRESETS, GPTConfig, described, field_docs

COMPUTE_DTYPES = ("float32", "bfloat16")
TASKS = ("lm", "sft", "dpo")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the model's shapes live in ``GPTConfig``).

    batch_size is the micro-batch B; one optimizer step sees grad_accum · B · block_size tokens.
    """

    data: str = described("prepared data directory (made by 'minigpt prepare')", "data/reviews")
    out: str = described("run directory: config.json, checkpoints/, metrics.jsonl, loss.png", "runs/baby")
    preset: str = described(f"model shape to start from: one of {', '.join(PRESETS)}", "baby")
    batch_size: int = described("micro-batch B: sequences per forward/backward pass", 12)
    grad_accum: int = described("micro-batches k accumulated into one optimizer step (exactly a k× batch)", 1)
    # the baby preset on a char-level review corpus: about 4 minutes on 2 CPU cores
    max_steps: int = described("optimizer steps to train for (may be raised when resuming)", 1500)
    lr: float = described("peak learning rate, reached after the warmup", 2e-3)
    min_lr: float = described("learning rate at the end of the cosine decay (at most lr)", 2e-4)
    warmup_steps: int = described("steps of linear warmup from lr/warmup_steps to lr", 50)
    lr_decay_steps: int = described("step where the cosine reaches min_lr; 0: max_steps (fixed when the run starts)", 0)
    weight_decay: float = described("AdamW weight decay, on Linear weight matrices only", 0.1)
    beta1: float = described("AdamW first-moment decay, in [0, 1)", 0.9)
    beta2: float = described("AdamW second-moment decay, in [0, 1)", 0.99)
    eps: float = described("AdamW epsilon in the denominator", 1e-8)
    grad_clip: float = described("clip the gradient's global L2 norm to this; 0: no clipping", 1.0)
    eval_interval: int = described("evaluate on the validation batches every this many steps", 250)
    eval_batches: int = described("validation batches per evaluation (always the same ones)", 20)
    log_interval: int = described("write a metrics.jsonl line (loss, lr, tokens/s, MFU) every this many steps", 10)
    ckpt_interval: int = described("save a checkpoint every this many steps (and at the end)", 250)
    keep_checkpoints: int = described("checkpoints kept on disk, the oldest deleted first", 3)
    seed: int = described("seed of the initial parameters, the batches and the dropout masks", 0)
    compute_dtype: str = described(f"compute dtype ({' or '.join(COMPUTE_DTYPES)}); weights stay float32", "float32")
    remat: bool = described("recompute each block's activations in the backward pass (less memory)", False)
    fast: bool = described(
        "the fast kernels (minigpt.model.kernels): the same numbers as the plain model, less memory and time", True
    )
    progress: bool = described("progress on stderr: a tqdm bar on a terminal, a line every 5 s in a file or log", True)
    mesh: str = described("device mesh, e.g. 'data=4,fsdp=2' (minigpt.training.distributed); '': one device", "")
    init_from: str | None = described(
        "start from the weights of a run dir or Hugging Face dir (fresh optimizer, schedule, step 0)", None
    )
    task: str = described(
        "'lm' (next token), 'sft' (chat replies only), 'dpo' (preference pairs, from init_from)", "lm"
    )
    beta: float = described("DPO's β: how far the policy may move from the reference model for its reward", 0.1)
    lora_rank: int = described("LoRA rank r: train low-rank adapters on a frozen base (minigpt.adapters); 0: off", 0)
    lora_alpha: float = described("LoRA α: the adapters' update x A B is scaled by α / r", 16.0)
    lora_targets: str = described(
        "LoRA's layers, e.g. c_attn,c_proj,c_fc,c_gate or mlp.c_proj; '': attn.c_attn,attn.c_proj", ""
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
        if self.task not in TASKS:
            raise ValueError(f"TrainConfig.task must be one of {TASKS}, got {self.task!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not self.beta > 0:
            raise ValueError(f"TrainConfig.beta must be a positive number, got {self.beta!r}")
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
    def fast_kernels(self) -> bool:
        """``fast``'s old name, still readable (saved runs and config files with it load through ``RENAMED``)."""
        return self.fast

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps or self.max_steps

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# Old field names → new ones, for config.json files, checkpoints and --config files written before a rename.
RENAMED = {"fast_kernels": "fast"}


def current_names(train: dict[str, Any]) -> dict[str, Any]:
    """A saved ``train`` settings dict with every renamed field under its current name."""
    return {RENAMED.get(name, name): value for name, value in train.items()}


# Fields that may change when a run is resumed: they do not alter the optimisation path.
RESUMABLE_CHANGES = frozenset(
    {"data", "out", "max_steps", "eval_interval", "eval_batches", "log_interval", "ckpt_interval"}
    | {"keep_checkpoints", "progress", "mesh"}
)
# Fields that enter the compiled step but not the mathematics: a run may resume with them changed.
EQUIVALENT_CHANGES = frozenset({"fast"})
TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
MODEL_FIELDS = [f.name for f in dataclasses.fields(GPTConfig)]
TRAIN_DOCS = field_docs(TrainConfig)


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
    for name, value in current_names(saved["train"]).items():
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
    train = current_names(dict(data.pop("train", {})))
    for key, value in current_names(data).items():
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
