"""The README's main job, end to end on a tiny budget: prepare → train → sample, then resume."""

import pytest

from minigpt.cli import main


@pytest.mark.slow
def test_demo_prepares_trains_samples_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--preset", "tiny", "--max-steps", "3", "--new-tokens", "4", "--ban", "好"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "char tokenizer, vocab_size" in out
    assert "done at step 3" in out
    assert out.count("这款手机的性能非常好，") >= 5  # greedy, three samples, beam
    assert "\n\n\n" not in out  # a continuation stops at its review's end without printing the line break
    beam = out.split("banning '好'")[1]
    assert "好" not in beam.replace("这款手机的性能非常好，", "")
    assert (tmp_path / "runs/baby/loss.png").is_file()

    # a second run skips what is done and resumes training to the new step count
    assert main([*args[:3], "--max-steps", "5", *args[5:]]) == 0
    out = capsys.readouterr().out
    assert "already prepared" in out
    assert "resuming runs/baby from step 3" in out
    assert "done at step 5" in out
