"""The run directory of ``minigpt train``, below training, sampling, plotting and the apps::

    RUN/config.json        {"model": GPTConfig, "train": TrainConfig} as plain dicts
    RUN/checkpoints/<s>/   Orbax checkpoints (``minigpt.training.checkpoint``), the last ``keep_checkpoints``; a LoRA
                           run's hold the base and the adapters (``load_run`` merges them, ``load_lora`` does not)
    RUN/metrics.jsonl      one JSON object per log line (train) and per evaluation (val)
    RUN/loss.png           the loss curves (``minigpt plot RUN``)
    RUN/tokenizer/         copied from the data directory when it has one
    RUN/.lock              held (``fcntl.flock``) by the one trainer writing RUN; holds its pid

Reading configs and metrics needs neither JAX nor Orbax; only ``load_run`` imports them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minigpt import atomic
from minigpt.adapters import spec_from_train, split
from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.reference.lora import merge_params
from minigpt.tokenizers import load_tokenizer

CONFIG, METRICS, CHECKPOINTS, TOKENIZER, PLOT, LOCK = (
    "config.json", "metrics.jsonl", "checkpoints", "tokenizer", "loss.png", ".lock",
)  # fmt: skip


class RunInUse(ValueError):
    """Another process holds the run directory's lock."""


class RunNotWritable(ValueError):
    """The run directory cannot be written (read-only, or its disk is full); the message says what was kept and
    what to do. A ValueError, like the other mistakes the commands report in one line."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def write_config(run_dir: str | Path, model: dict[str, Any], train: dict[str, Any]) -> None:
    text = json.dumps({"model": model, "train": train}, indent=2, sort_keys=True)
    atomic.write_text(Path(run_dir) / CONFIG, text + "\n")


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/config.json``: {"model": {...}, "train": {...}}."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --out with a run directory made by 'minigpt train'")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupted ({e}); restore it or start a new run with another --out") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("model"), dict) and isinstance(saved.get("train"), dict)):
        raise ValueError(f"{path} must hold {{'model': {{...}}, 'train': {{...}}}}; was it written by minigpt train?")
    return saved


def copy_tokenizer(data_dir: str | Path, run_dir: str | Path) -> bool:
    """Copy ``DATA/tokenizer`` into ``RUN/tokenizer`` (when the data has one): a run samples without its data."""
    src, dst = Path(data_dir) / TOKENIZER, Path(run_dir) / TOKENIZER
    if src.is_dir() and src.resolve() != dst.resolve():  # --out may be the data directory itself
        shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst.is_dir()


@contextlib.contextmanager
def locked(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``RUN/.lock`` for the duration: a second trainer on RUN gets ``RunInUse`` naming the holder's pid, a
    read-only RUN ``RunNotWritable``.

    ``flock`` belongs to the open file: the kernel drops it when the holder exits, also after SIGKILL, so a stale
    lock never needs cleaning up. The pid in the file is only for the message.
    """
    run_dir = Path(run_dir)
    try:  # the first write of a run: a read-only run directory is found here, before anything is computed
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise RunNotWritable(
            f"{run_dir} is not writable ({e.strerror}): training writes its lock, checkpoints and metrics there; "
            "remount it read-write, or copy the run somewhere writable and pass that as --out "
            "(sampling and plotting with --out elsewhere read it as it is)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunInUse(
            f"{run_dir} is in use by another trainer (pid {holder}); wait for it to finish or stop it, "
            "or train into another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir
    finally:
        os.ftruncate(fd, 0)  # an unheld lock names nobody
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class MetricsLog:
    """Appends JSON lines to ``RUN/metrics.jsonl`` (flushed, so a crash loses at most the current line).

    A new run starts the file afresh; a resumed one drops the lines logged after its checkpoint (they are redone).
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None) -> None:
        self.path = Path(run_dir) / METRICS
        if resume_step is not None and self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            atomic.write_text(self.path, "".join(line + "\n" for line in lines if _line_step(line) <= resume_step))
        elif self.path.exists():
            self.path.unlink()
        self.file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as e:  # only after a write already failed (every write is flushed) and was reported
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise


def _line_step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def read_metrics(run_dir: str | Path, *, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The records of ``RUN/metrics.jsonl`` in order.

    A last line that was cut off (a crash, a full disk, a copy in progress) is skipped with a warning through
    ``warn`` (default: stderr); a damaged line before it is a ValueError naming its line number.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is {run_dir} a run directory made by 'minigpt train'?")
    lines = [(n, line) for n, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1) if line.strip()]
    records = []
    for n, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            record, reason = None, f"{e.msg} at column {e.colno}"
        else:
            reason = f"a JSON {type(record).__name__}, not an object"
        if isinstance(record, dict):
            records.append(record)
        elif n == lines[-1][0]:  # only a line being written when the file stopped growing is incomplete
            (warn or _warn_stderr)(f"{path}: skipped line {n}, which was cut off ({reason})")
        else:
            raise ValueError(f"{path}: line {n} is damaged ({reason}); repair or delete that line")
    return records


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def load_run(
    run_dir: str | Path, step: int | None = None, *, warn: Callable[[str], None] | None = None
) -> tuple[GPTConfig, Params, Any]:
    """(GPTConfig, params as NumPy arrays in the reference layout, tokenizer or None) of a run's checkpoint.

    ``step=None`` loads the newest checkpoint that restores: damaged ones are reported through ``warn`` (default:
    stderr) and skipped. The tokenizer is ``minigpt.tokenizers.load_tokenizer(RUN/tokenizer)`` when RUN has one.
    A LoRA run's params come merged (W + (α/r) A B, ``minigpt.reference.lora.merge_params``): a plain model
    that samples, exports and fine-tunes like any other; ``load_lora`` gives the base and adapters apart.
    """
    cfg, base, adapters, spec, tokenizer = load_lora(run_dir, step, warn=warn)
    if adapters is None:
        return cfg, base, tokenizer

    return cfg, merge_params(base, adapters, spec.scale), tokenizer


def load_lora(run_dir: str | Path, step: int | None = None, *, warn: Callable[[str], None] | None = None) -> tuple:
    """(GPTConfig, base params, adapters or None, LoraSpec or None, tokenizer or None), as NumPy, of a checkpoint
    (see ``load_run``); adapters and spec are None for a run trained without LoRA."""
    from minigpt.training import checkpoint  # JAX and Orbax: only for loading arrays, not for configs and metrics

    run_dir = Path(run_dir)
    ckpt_dir = checkpoint_dir(run_dir)
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"{ckpt_dir} not found; is {run_dir} a run directory made by 'minigpt train'?")
    params, _, meta = checkpoint.restore(ckpt_dir, None, None, step, warn=warn)
    tokenizer = None
    if (run_dir / TOKENIZER).is_dir():
        tokenizer = load_tokenizer(run_dir / TOKENIZER)
    base, adapters = split(checkpoint.to_numpy(params))
    return GPTConfig.from_dict(meta["model"]), base, adapters, spec_from_train(meta["train"]), tokenizer
