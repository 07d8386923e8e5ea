"""``minigpt explain`` end to end on a tiny trained run: the PNGs, the JSON's numbers, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_data import CFG, tcfg_for, write_data

from minigpt.cli import main
from minigpt.fonts import SHIPPED, font_characters

ROOT = Path(__file__).resolve().parents[1]
# CJK characters that the shipped font draws (labels of the figures), one per token id but UNK and EOT
CHARS = "".join(sorted(chr(c) for c in font_characters(str(SHIPPED)) if 0x4E00 <= c <= 0x9FFF)[: CFG.vocab_size - 2])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 6-step run of the tiny model with a character tokenizer over CJK characters."""
    from minigpt.tokenizers import CharTokenizer
    from minigpt.training.loop import train

    tmp = tmp_path_factory.mktemp("explain")
    data = write_data(tmp / "data")
    CharTokenizer.from_texts([CHARS]).save(data / "tokenizer")
    train(CFG, tcfg_for(data, tmp / "run"), log=lambda *_: None)
    return tmp / "run"


def test_explain_writes_the_figures_and_the_numbers(run, tmp_path, capsys):
    prompt, corrupt = CHARS[3:9], CHARS[3:6] + CHARS[20] + CHARS[7:9]  # one character changed, at position 3
    out = tmp_path / "explain"
    argv = ["explain", str(run), "--prompt", prompt, "--corrupt", corrupt, "--target", CHARS[10], "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"logit[{CHARS[10]}] - logit[" in printed and "wrote logit_lens.png" in printed
    for name in ("logit_lens.png", "attribution.png", "patching.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    report = json.loads((out / "explain.json").read_text(encoding="utf-8"))
    L, T = CFG.n_layer, len(prompt)
    assert report["tokens"] == list(prompt) and report["target"]["text"] == CHARS[10]
    assert report["contrast"] is not None and report["contrast"]["id"] != report["target"]["id"]
    lens = report["logit_lens"]
    assert len(lens["rows"]) == len(lens["top_tokens"]) == L + 1 and len(lens["top_tokens"][0]) == T
    assert np.all((np.array(lens["target_probability"]) >= 0) & (np.array(lens["target_probability"]) <= 1))
    att = report["attribution"]
    assert att["position"] == T - 1 and len(att["parts"]) == 1 + L * (CFG.n_head + 2) + 1
    assert sum(att["parts"].values()) == pytest.approx(att["total"], rel=1e-4, abs=1e-4)  # float32 params
    restored = np.array(report["patching"]["restored"])
    assert restored.shape == (L, T)
    np.testing.assert_array_equal(restored[0, [0, 1, 2, 4, 5]], 0.0)  # equal tokens: patching the embedding is a no-op
    assert restored[0, 3] == pytest.approx(1.0, abs=1e-4)  # the changed token's embedding carries all of it


def test_without_corrupt_there_is_no_patching_and_bad_tokens_are_named(run, tmp_path, capsys):
    out = tmp_path / "plain"
    assert main(["explain", str(run), "--prompt", CHARS[:4], "--out", str(out)]) == 0
    report = json.loads((out / "explain.json").read_text(encoding="utf-8"))
    assert report["patching"] is None and report["contrast"] is None and not (out / "patching.png").exists()
    capsys.readouterr()
    for extra, message in (
        (["--target", CHARS[:2]], f"--target '{CHARS[:2]}' is 2 tokens"),
        (["--corrupt", CHARS[:3]], "--corrupt is 3 tokens and --prompt 4"),
        (["--prompt", CHARS * 2], "more than the model's context of 16"),
    ):
        assert main(["explain", str(run), "--prompt", CHARS[:4], "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("minigpt explain: error:") and message in err and len(err.splitlines()) == 1


def test_the_command_runs_from_the_cli_without_pyplot(run, tmp_path):
    """Registered in the command table, and drawing on explicit Figures: pyplot (global state) is never imported."""
    script = (
        "import sys; from minigpt.cli import main; "
        f"rc = main(['explain', {str(run)!r}, '--prompt', {CHARS[:5]!r}, '--out', {str(tmp_path)!r}]); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'; sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "logit_lens.png").is_file()


def test_the_default_contrast_is_the_corrupted_prediction_or_the_token_the_corruption_favours_most():
    from minigpt.interpret.explain import default_contrast

    clean = np.array([3.0, 1.0, 0.0, -np.inf])
    assert default_contrast(clean, np.array([0.0, 2.0, 0.0, -np.inf]), target=0) == 1  # its own prediction
    # both predict token 0: token 2 gains most in log-probability; the ruled-out token 3 is never chosen
    assert default_contrast(clean, np.array([3.0, 1.0, 1.5, -np.inf]), target=0) == 2
