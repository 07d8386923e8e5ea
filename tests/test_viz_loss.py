"""minigpt.viz.loss: the loss plot is drawn without touching matplotlib's global backend, so a notebook that trains
keeps showing its figures inline (the backend a notebook uses is stood in for by 'svg', which is not Agg)."""

from __future__ import annotations

import json

import matplotlib
import pytest
from train_data import CFG, tcfg_for, write_data

from minigpt.training.loop import train
from minigpt.viz.loss import plot_run


@pytest.fixture
def svg_backend():
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(before)


def test_plot_run_leaves_the_backend_alone(tmp_path, svg_backend):
    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5, "val_loss": 2.7}])
    )
    path = plot_run(tmp_path)
    assert matplotlib.get_backend() == "svg"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # still a PNG, drawn by the Agg canvas


@pytest.mark.slow
def test_training_leaves_the_backend_alone(tmp_path, svg_backend):
    data = write_data(tmp_path / "data")
    summary = train(CFG, tcfg_for(data, tmp_path / "run", max_steps=3), log=lambda *_: None)
    assert summary["status"] == "done"
    assert (tmp_path / "run" / "loss.png").is_file()
    assert matplotlib.get_backend() == "svg"
