"""``minigpt train --init-from``: weights from a run or a Hugging Face directory, a fresh optimizer and schedule,
the vocabulary extension (shared rows copied, new rows drawn), --resume, and one-line refusals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from train_data import CFG, cli_args, tcfg_for, write_data

from minigpt import hub
from minigpt import reference as ref
from minigpt.commands.train import main
from minigpt.params import flatten_params, map_params
from minigpt.tokenizers import CharTokenizer
from minigpt.training import init_from
from minigpt.training.loop import train
from minigpt.training.runs import load_run, read_config, read_metrics
from minigpt.training.step import init_params

CHARS = [chr(0x4E00 + k) for k in range(62)]  # 2 special tokens + 62 characters = CFG's vocab of 64


def _data(d: Path, chars=CHARS, extra=()) -> Path:
    tok = CharTokenizer(chars)
    tok.add_special_tokens(list(extra))
    write_data(d, vocab=tok.vocab_size)
    tok.save(d / "tokenizer")
    return d


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A 6-step run of ``CFG`` on data with a char tokenizer."""
    tmp = tmp_path_factory.mktemp("source")
    run = tmp / "run"
    summary = train(CFG, tcfg_for(_data(tmp / "data"), run), log=lambda m: None)
    assert summary["status"] == "done"
    return run


def _args(data: Path, out: Path, src: Path, steps: int = 2) -> list[str]:
    argv = cli_args(data, out) + ["--init-from", str(src)]
    return [a if a != "6" or argv[i - 1] != "--max_steps" else str(steps) for i, a in enumerate(argv)]


def test_init_from_a_run_starts_at_its_val_loss_with_a_fresh_schedule(source, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(source.parent / "data", run, source)) == 0
    src_val = [r["val_loss"] for r in read_metrics(source) if "val_loss" in r][-1]  # after its last step
    records = read_metrics(run)
    assert records[0]["init_from"]["path"] == str(source.resolve()) and records[0]["init_from"]["kind"] == "run"
    first_val = next(r for r in records if "val_loss" in r)
    assert first_val["step"] == 0 and math.isclose(first_val["val_loss"], src_val, rel_tol=1e-6)
    step1 = next(r for r in records if r.get("step") == 1 and "lr" in r)
    assert math.isclose(step1["lr"], 3e-3 / 2, rel_tol=1e-6)  # warmup restarts: lr/warmup_steps at step 1
    assert read_config(run)["train"]["init_from"] == str(source)
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit())[-1] == "2"
    assert "initialised from the run" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_of_an_init_from_run_uses_its_own_checkpoints(source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(source, src)
    run = tmp_path / "run"
    assert main(_args(source.parent / "data", run, src)) == 0
    _, at2, _ = load_run(run)
    shutil.rmtree(src)  # the source is gone: resuming must not need it
    argv = ["--resume", "--out", str(run), "--max_steps", "4"]
    assert main(argv) == 0
    assert [r["step"] for r in read_metrics(run) if "val_loss" in r][-1] == 4
    assert [r["init_from"]["path"] for r in read_metrics(run) if "init_from" in r] == [str(src.resolve())]
    _, at4, _ = load_run(run, step=4)
    assert not np.array_equal(at2["wte"]["weight"], at4["wte"]["weight"])


def test_init_from_a_hugging_face_directory(tmp_path):
    cfg = CFG.replace(dropout=0.0)
    params = ref.init_params(cfg, seed=7)
    hub.save_pretrained(tmp_path / "hf", cfg, params)
    data = write_data(tmp_path / "data")  # no tokenizer on either side: the vocab sizes must agree
    tcfg = tcfg_for(data, tmp_path / "run", init_from=str(tmp_path / "hf"))
    resolved = init_from.resolve_model(tcfg, {})
    assert resolved == cfg
    got, origin = init_from.initial_params(resolved, tcfg, log=lambda m: None)
    assert origin["kind"] == "hf"
    for name, value in flatten_params(params).items():
        assert np.array_equal(flatten_params(got)[name], value), name
    assert main(_args(data, tmp_path / "run", tmp_path / "hf", steps=1)) == 0


def test_a_grown_vocabulary_keeps_the_shared_rows_and_logits(source, tmp_path):
    data = _data(tmp_path / "ext", extra=("<pos>", "<neg>"))  # the source's 64 ids, then 2 new ones
    tcfg = tcfg_for(data, tmp_path / "run", init_from=str(source))
    cfg = init_from.resolve_model(tcfg, {"dropout": 0.0})
    assert cfg == CFG.replace(vocab_size=66, dropout=0.0)
    new, origin = init_from.initial_params(cfg, tcfg, log=lambda m: None)
    _, old, _ = load_run(source)
    assert origin["new_ids"] == [64, 66]
    assert np.array_equal(new["wte"]["weight"][:64], old["wte"]["weight"])  # bit-identical shared rows
    fresh = init_params(cfg, tcfg.seed)["wte"]["weight"]
    assert np.array_equal(new["wte"]["weight"][64:], fresh[64:])  # new rows: a fresh model's N(0, 0.02) draw
    assert 0.005 < new["wte"]["weight"][64:].std() < 0.05
    idx = np.random.default_rng(0).integers(0, 64, size=(2, 16))
    f64 = lambda p: map_params(lambda a: np.asarray(a, np.float64), p)  # noqa: E731
    before = ref.forward(f64(old), idx, CFG.replace(dropout=0.0))
    after = ref.forward(f64(new), idx, cfg)
    np.testing.assert_allclose(after[..., :64], before, rtol=1e-12, atol=1e-12)


def test_untied_head_gets_its_shared_columns():
    src_cfg = CFG.replace(tie_embeddings=False, dropout=0.0)
    cfg = src_cfg.replace(vocab_size=70)
    old, fresh = ref.init_params(src_cfg, seed=1), ref.init_params(cfg, seed=2)
    out = init_from.transfer(old, fresh, src_cfg)
    assert np.array_equal(out["lm_head"]["weight"][:, :64], old["lm_head"]["weight"])
    assert np.array_equal(out["lm_head"]["weight"][:, 64:], fresh["lm_head"]["weight"][:, 64:])
    assert np.array_equal(out["h"][0]["mlp"]["c_fc"]["weight"], old["h"][0]["mlp"]["c_fc"]["weight"])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("minigpt train: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_mismatches_are_one_line_cli_errors(source, tmp_path, capsys):
    data = source.parent / "data"
    assert main(_args(data, tmp_path / "a", source) + ["--n_layer", "2"]) == 2
    err = _one_line_error(capsys)
    assert "--n_layer 2" in err and "n_layer=1" in err and str(source) in err

    # CHARS[5] (id 2 + 5) swapped for a character sorting after all of them: id 7 now holds CHARS[6]
    other = _data(tmp_path / "other", chars=CHARS[:5] + CHARS[6:] + [chr(0x4E00 + 100)])
    assert main(_args(other, tmp_path / "b", source)) == 2
    err = _one_line_error(capsys)
    assert f"id 7 is {CHARS[5]!r} in the source but {CHARS[6]!r} in the data" in err and str(other) in err

    small = _data(tmp_path / "small", chars=CHARS[:40])
    assert main(_args(small, tmp_path / "c", source)) == 2
    assert "vocab_size 64" in _one_line_error(capsys)

    assert main(_args(data, source, source)) == 2
    assert "--resume" in _one_line_error(capsys)
    assert main(_args(data, tmp_path / "d", tmp_path / "nowhere")) == 2
    assert "neither a minigpt run directory" in _one_line_error(capsys)
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert main(_args(data, tmp_path / "e", tmp_path / "hf")) == 2
    assert "Hugging Face" in _one_line_error(capsys)
    for d in "abcde":
        assert not (tmp_path / d / "checkpoints").exists()


def test_help_shows_the_option():
    from minigpt.commands.train import build_parser
    from minigpt.training.config import TRAIN_DOCS

    text = " ".join(build_parser().format_help().split())
    assert "--init_from X, --init-from X" in text and " ".join(TRAIN_DOCS["init_from"].split()) in text
