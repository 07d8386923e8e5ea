"""minigpt.training.runs: the run directory — its lock, metrics, config, and loading a run whose newest checkpoint
is damaged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_data import CFG, damage, tcfg_for, write_data

from minigpt.params import flatten_params
from minigpt.training import runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 6-step run with checkpoints 2, 4 and 6 and a tokenizer."""
    from minigpt.tokenizers import CharTokenizer
    from minigpt.training.loop import train

    tmp = tmp_path_factory.mktemp("trained")
    data = write_data(tmp / "data")
    tok = CharTokenizer.from_texts(["".join(chr(0x4E00 + i) for i in range(CFG.vocab_size - 2))])  # + UNK, EOT
    assert tok.vocab_size == CFG.vocab_size
    tok.save(data / "tokenizer")
    train(CFG, tcfg_for(data, tmp / "run", ckpt_interval=2), log=lambda *_: None)
    return tmp / "run"


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    with runs.locked(tmp_path / "r") as held:
        assert (held / runs.LOCK).read_text() == f"{os.getpid()}\n"
        message = rf"^{tmp_path / 'r'} is in use by another trainer \(pid {os.getpid()}\)"
        with pytest.raises(runs.RunInUse, match=message):
            with runs.locked(tmp_path / "r"):
                pass  # pragma: no cover - never entered
    assert (tmp_path / "r" / runs.LOCK).read_text() == ""  # an unheld lock names nobody
    with runs.locked(tmp_path / "r"):  # free again
        pass
    with pytest.raises(ZeroDivisionError), runs.locked(tmp_path / "r"):
        1 / 0  # noqa: B018 - an error inside still releases the lock
    with runs.locked(tmp_path / "r"):
        pass


def test_metrics_log_starts_afresh_or_drops_lines_after_the_resumed_step(tmp_path):
    log = runs.MetricsLog(tmp_path, None)
    for step in range(1, 6):
        log.write({"step": step, "loss": float(step)})
    log.close()
    log = runs.MetricsLog(tmp_path, 3)  # resumed from step 3: steps 4 and 5 will be logged again
    log.write({"step": 4, "loss": -4.0})
    log.close()
    assert [(r["step"], r["loss"]) for r in runs.read_metrics(tmp_path)] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, -4.0)]
    runs.MetricsLog(tmp_path, None).close()
    assert runs.read_metrics(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="metrics.jsonl not found"):
        runs.read_metrics(tmp_path / "nowhere")


def test_config_round_trip_and_clear_errors(tmp_path):
    runs.write_config(tmp_path, CFG.to_dict(), {"lr": 1e-3})
    assert runs.read_config(tmp_path) == {"model": CFG.to_dict(), "train": {"lr": 1e-3}}
    (tmp_path / runs.CONFIG).write_text("{")
    with pytest.raises(ValueError, match="config.json is corrupted"):
        runs.read_config(tmp_path)
    (tmp_path / runs.CONFIG).write_text("[]")
    with pytest.raises(ValueError, match="must hold"):
        runs.read_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        runs.read_config(tmp_path / "none")


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_load_run_falls_back_to_the_newest_checkpoint_that_restores(trained, run_copy, how):
    _, at4, _ = runs.load_run(trained, step=4)
    damage(run_copy / "checkpoints" / "6", how)
    messages = []
    cfg, params, tok = runs.load_run(run_copy, warn=messages.append)
    assert cfg == CFG and tok is not None and tok.vocab_size == CFG.vocab_size
    for name, a in flatten_params(at4).items():
        np.testing.assert_array_equal(flatten_params(params)[name], a, err_msg=name)
    assert messages[0].startswith(f"checkpoint step 6 ({run_copy / 'checkpoints' / '6'}) does not restore")
    assert messages[-1] == "using checkpoint step 4, the newest one that restores"


def sample(run: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "minigpt.cli", "sample", str(run), "--prompt", "一", "--max-new-tokens", "3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*argv, "--strategy", "greedy", *extra], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_sample_warns_and_uses_an_older_checkpoint_or_says_what_to_do(run_copy):
    damage(run_copy / "checkpoints" / "6", "truncate")
    ok = sample(run_copy)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "warning: checkpoint step 6" in ok.stderr and "Traceback" not in ok.stderr
    assert ok.stdout.startswith("一") and len(ok.stdout.strip()) == 4
    for step in (2, 4):
        damage(run_copy / "checkpoints" / str(step), "flip")
    bad = sample(run_copy)
    last = bad.stderr.strip().splitlines()[-1]
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert last.startswith("minigpt sample: error: none of the 3 checkpoints") and "start a new run" in last


def test_reading_a_run_loads_neither_jax_nor_orbax(trained):
    code = (
        "import sys; from minigpt import runs, plot; runs.read_metrics(sys.argv[1]); runs.read_config(sys.argv[1]);"
        "training = ('minigpt.training.step', 'minigpt.training.loop');"
        "print(sorted(m for m in ('jax', 'orbax', *training) if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", code, str(trained)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_copy_tokenizer_copies_and_leaves_a_run_in_its_own_data_directory_alone(tmp_path):
    data = tmp_path / "data"
    (data / runs.TOKENIZER).mkdir(parents=True)
    (data / runs.TOKENIZER / "vocab.json").write_text('{"a": 0}', encoding="utf-8")
    assert runs.copy_tokenizer(data, tmp_path / "run")
    assert (tmp_path / "run" / runs.TOKENIZER / "vocab.json").read_text(encoding="utf-8") == '{"a": 0}'
    # --out equal to --data: shutil.copytree onto itself raised "are the same file"
    assert runs.copy_tokenizer(data, data)
    assert (data / runs.TOKENIZER / "vocab.json").read_text(encoding="utf-8") == '{"a": 0}'
    assert not runs.copy_tokenizer(tmp_path / "no-tokenizer", tmp_path / "elsewhere")  # nothing to copy
