"""minigpt.commands.train: a whole run from the command line, its run directory, errors, --help, --resume rules."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from train_data import CFG, cli_args, lock_holder, write_data

from minigpt import reference as ref
from minigpt.commands.train import build_parser, main
from minigpt.params import flatten_params, map_params, validate_params
from minigpt.training.runs import load_run, read_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
def test_run_directory_load_run_plot_and_cli(tmp_path, capsys):
    data = write_data(tmp_path / "data")
    (data / "tokenizer").mkdir()
    (data / "tokenizer" / "vocab.json").write_text('{"a": 0}')
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps({"model": {"n_layer": 1}, "train": {"eval_batches": 2}, "dropout": 0.1, "keep_checkpoints": 2})
    )
    run = tmp_path / "run"
    argv = ["--data", str(data), "--out", str(run), "--preset", "tiny", "--config", str(config)]
    argv += ["--max-steps", "6", "--batch_size", "4", "--lr", "3e-3", "--warmup_steps", "2", "--lr_decay_steps", "6"]
    argv += ["--min_lr", "3e-4"]
    argv += ["--eval_interval", "3", "--ckpt_interval", "2", "--log_interval", "1", "--progress", "false"]
    argv += ["--grad-accum", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"done at step 6 in .*val loss \d+\.\d+ \(perplexity \d+\.\d+\)", out), out
    assert f"checkpoint: {run / 'checkpoints' / '6'}" in out

    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == CFG.to_dict() and saved["train"]["keep_checkpoints"] == 2
    assert saved["train"]["eval_batches"] == 2 and saved["train"]["max_steps"] == 6
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["4", "6"]  # keep 2
    assert (run / "tokenizer" / "vocab.json").read_text() == '{"a": 0}'
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = read_metrics(run)
    assert [r["step"] for r in records if "val_loss" in r] == [0, 3, 6]
    assert all(math.isclose(r["val_ppl"], math.exp(r["val_loss"]), rel_tol=1e-9) for r in records if "val_loss" in r)

    # load_run: the reference layout, as NumPy; the same parameters as the checkpoint's step
    (run / "tokenizer").rename(tmp_path / "moved_tokenizer")  # minigpt.tokenizers is another area's module
    cfg, params, tok = load_run(run)
    assert cfg == CFG and tok is None
    validate_params(params, cfg)
    assert all(isinstance(v, np.ndarray) for v in flatten_params(params).values())
    _, p4, _ = load_run(run, step=4)
    assert not np.array_equal(p4["wte"]["weight"], params["wte"]["weight"])
    with pytest.raises(ValueError, match="no checkpoint for step 5"):
        load_run(run, step=5)

    # the final validation loss is the model's own loss on the fixed validation batches
    from minigpt.data import BatchSampler

    val = np.load(data / "val.npy")
    sampler = BatchSampler(val, cfg.block_size, 4, seed=1_234_567)
    p64 = map_params(lambda a: a.astype(np.float64), params)  # the NumPy reference has no dropout
    per_batch = [float(ref.loss(p64, *sampler.batch(i), cfg)) for i in range(2)]
    assert records[-1]["val_loss"] == pytest.approx(float(np.mean(per_batch)), rel=1e-5)

    # plot command
    from minigpt.commands.plot import main as plot_main

    (run / "loss.png").unlink()
    assert plot_main([str(run)]) == 0 and (run / "loss.png").exists()
    assert plot_main([str(tmp_path / "nowhere")]) == 2

    # resuming with an incompatible setting: a clear error, nothing touched
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["--out", str(run), "--resume", "--lr", "1e-2", "--progress", "false"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "lr: checkpoint has 0.003, requested 0.01" in err
    assert main(argv) == 2  # a fresh run into a directory with checkpoints
    assert "already holds checkpoints" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    # resuming with more steps is allowed and continues from step 6
    assert main(["--out", str(run), "--resume", "--max_steps", "7", "--progress", "false"]) == 0
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n_layers", "3"], "unknown option '--n_layers'; did you mean 'n_layer'"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--batch_size", "5000"], "batch_size=5000 is larger than the data"),
        (["--block_size", "600"], "block_size=600 is larger than the val split allows"),
        (["--vocab_size", "10"], "disagrees with the data's vocab_size 64"),
        (["--lr", "1e-5"], "min_lr=0.0002 exceeds lr=1e-05"),
        (["--compute_dtype", "float16"], "compute_dtype must be one of"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, data_dir, capsys, extra, message):
    argv = ["--data", str(data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny", "--progress", "0"]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_or_broken_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")]) == 2
    assert "not a prepared data directory (no meta.json)" in capsys.readouterr().err
    data = write_data(tmp_path / "data")
    (data / "meta.json").write_text('{"vocab_size": "64"}')
    assert main(["--data", str(data), "--out", str(tmp_path / "run")]) == 2
    assert "must hold a positive integer 'vocab_size'" in capsys.readouterr().err
    write_data(data)
    (data / "val.npy").unlink()
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny"]) == 2
    assert "val.npy: missing" in capsys.readouterr().err


def test_every_flag_has_a_one_line_help_from_the_field_docs():
    from minigpt.config import FIELD_DOCS
    from minigpt.training.config import TRAIN_DOCS

    parser = build_parser()
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) == len(TRAIN_DOCS) + len(FIELD_DOCS) + 2  # + --config, --resume
    for action in options:
        assert action.help and "\n" not in action.help, action.option_strings
        section, _, name = action.dest.partition(".")
        if section == "train":
            assert action.help.startswith(TRAIN_DOCS[name])
        elif section == "model":
            assert action.help == FIELD_DOCS[name]
    text = parser.format_help()
    assert "micro-batch B" in text and "attention heads H" in text


def test_resume_while_a_trainer_runs_is_refused_at_once(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    assert main([*cli_args(data_dir, run), "--max_steps", "3"]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    holder = lock_holder(run)
    try:
        capsys.readouterr()
        assert main(["--resume", "--out", str(run), "--max_steps", "6", "--progress", "false"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"in use by another trainer (pid {holder.pid})" in err
        assert main(cli_args(data_dir, run)) == 2  # nor a fresh run into it
        assert f"pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_every_model_option_parses_to_its_fields_type():
    """Strings, optional ints and booleans of GPTConfig come through the command line as GPTConfig wants them."""
    from minigpt.commands.train import build_parser
    from minigpt.config import GPTConfig

    args = vars(
        build_parser().parse_args(
            ["--pos", "rope", "--norm", "rmsnorm", "--mlp", "swiglu", "--n_kv_head", "2", "--mlp-hidden", "96"]
            + ["--tie_embeddings", "false", "--rope_theta", "5e5", "--qkv_bias", "--n_layer", "3"]
        )
    )
    got = {k.split(".", 1)[1]: v for k, v in args.items() if k.startswith("model.") and v is not None}
    assert got == {
        "pos": "rope",
        "norm": "rmsnorm",
        "mlp": "swiglu",
        "n_kv_head": 2,
        "mlp_hidden": 96,
        "tie_embeddings": False,
        "rope_theta": 500000.0,
        "qkv_bias": True,
        "n_layer": 3,
    }
    cfg = GPTConfig.preset("baby").replace(**got)  # and GPTConfig accepts them
    assert cfg.kv_heads == 2 and cfg.mlp_width == 96
