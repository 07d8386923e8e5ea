"""A run directory that cannot be written: a disk that fills during training, a run directory mounted read-only.

Each is one line from ``minigpt train`` that names what was kept and what to do, never a traceback; the files already
there stay intact, and training resumes once the disk is writable again. Where the test cannot mount a small tmpfs
or a read-only bind mount (not root), it injects the error the code would meet (``tests/mounts.py``).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest
from mounts import read_only_view, resize, tmpfs
from train_data import cli_args, write_data

from minigpt.commands.sample import main as sample_main
from minigpt.commands.train import main
from minigpt.tokenizers import CharTokenizer
from minigpt.training import checkpoint, runs
from minigpt.training.runs import load_run, read_metrics

MAX_STEPS = 8


def _fill_disk_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Without a tmpfs: every checkpoint save from ``step`` on fails as on a full disk, after leaving an unfinished
    temporary directory behind, as Orbax does."""
    real_save = ocp.CheckpointManager.save

    def save(self, at_step, *args, **kwargs):
        if at_step < step:
            return real_save(self, at_step, *args, **kwargs)
        (Path(self.directory) / f"{at_step}.orbax-checkpoint-tmp" / "params").mkdir(parents=True)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)


@pytest.mark.slow
def test_a_disk_that_fills_stops_with_one_line_and_the_run_resumes_once_space_is_freed(tmp_path, monkeypatch, capsys):
    data = write_data(tmp_path / "data")
    disk = tmp_path / "disk"
    with tmpfs(disk, "1200k") as mounted:  # room for about three checkpoints of this model (360 kB each)
        if not mounted:
            _fill_disk_at(monkeypatch, step=4)
        run = disk / "run"
        argv = [*cli_args(data, run), "--max_steps", str(MAX_STEPS), "--ckpt_interval", "1", "--keep_checkpoints", "99"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        where = re.escape(str(run))
        found = re.fullmatch(
            rf"minigpt train: error: the disk holding {where} is full \(no space left on device\): training stopped "
            rf"at step (\d+) and the last good checkpoint is step (\d+) \({where}/checkpoints/\2\)\. Free some space "
            rf"\(or lower --keep_checkpoints\), then continue with: minigpt train --resume --out {where}",
            err,
        )
        assert found, err
        stopped, kept = int(found[1]), int(found[2])
        assert stopped == kept + 1 and 1 <= kept < MAX_STEPS  # a checkpoint every step: the one before it is kept

        # the earlier checkpoints are intact, and the unfinished one is gone (its space freed)
        ckpt = runs.checkpoint_dir(run)
        assert sorted(int(p.name) for p in ckpt.iterdir()) == list(range(1, kept + 1))
        for step in range(1, kept + 1):
            _, params, _ = load_run(run, step=step, warn=pytest.fail)
            assert np.isfinite(params["wte"]["weight"]).all()

        # space freed: --resume continues from the kept step to the end, every step logged once
        if mounted:
            resize(disk, "16m")
        else:
            monkeypatch.undo()
        capsys.readouterr()
        assert main(["--resume", "--out", str(run), "--progress", "false"]) == 0
        assert f"resuming {run} from step {kept}" in capsys.readouterr().out
        assert [r["step"] for r in read_metrics(run) if "loss" in r] == list(range(1, MAX_STEPS + 1))
        assert checkpoint.latest_step(ckpt) == MAX_STEPS


def _read_only_at(monkeypatch: pytest.MonkeyPatch, run: Path) -> None:
    """Without a read-only mount: opening a file under ``run`` for writing fails as on one."""
    real_open = os.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def open_(path, flags, *args, **kwargs):
        if flags & writes and Path(path).is_relative_to(run):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(runs.os, "open", open_)


@pytest.mark.slow
def test_resume_on_a_read_only_run_is_one_line_and_sampling_it_still_works(tmp_path, monkeypatch, capsys):
    data = write_data(tmp_path / "data")
    chars = [chr(0x4E00 + i) for i in range(62)]  # with <unk> and <|endoftext|>: the model's 64 ids
    CharTokenizer(chars).save(data / "tokenizer")
    run = tmp_path / "run"
    assert main([*cli_args(data, run), "--max_steps", "3"]) == 0
    with read_only_view(run, tmp_path / "read-only") as mounted:
        view = tmp_path / "read-only" if mounted else run
        if not mounted:
            _read_only_at(monkeypatch, run)
        before = {p: p.read_bytes() for p in view.rglob("*") if p.is_file()}
        capsys.readouterr()
        assert main(["--resume", "--out", str(view), "--max_steps", "6", "--progress", "false"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"minigpt train: error: {view} is not writable (Read-only file system): ")
        assert "remount it read-write, or copy the run somewhere writable and pass that as --out" in err
        assert {p: p.read_bytes() for p in view.rglob("*") if p.is_file()} == before

        prompt = "".join(chars[:3])
        argv = [str(view), "--prompt", prompt, "--strategy", "greedy", "--max-new-tokens", "4", "--backend", "numpy"]
        assert sample_main(argv) == 0
        out = capsys.readouterr().out.strip()
        assert out.startswith(prompt) and len(out) > len(prompt)  # four tokens, perhaps <|endoftext|>


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        ValueError(
            'RESOURCE_EXHAUSTED: Error writing "1.0.mu.h.0.ln_2.bias/0" in OCDBT database at local file "/r/4.orbax-'
            "checkpoint-tmp/\": Failed to write 22009 bytes to file 28: No space left on device [os_error_code='28']"
        ),
    ],
)
def test_disk_full_recognises_python_and_tensorstore_errors_and_their_causes(error):
    assert checkpoint.disk_full(error)
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as outer:
        assert checkpoint.disk_full(outer)


@pytest.mark.parametrize(
    "error",
    [OSError(errno.EACCES, "Permission denied"), ValueError("RESOURCE_EXHAUSTED: out of memory"), ValueError("x")],
)
def test_disk_full_leaves_other_errors_alone(error):
    assert not checkpoint.disk_full(error)
