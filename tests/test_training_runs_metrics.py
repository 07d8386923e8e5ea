"""minigpt.training.runs.read_metrics on a damaged metrics.jsonl: a last line cut off is skipped with a warning
(also by ``minigpt plot``), a damaged line before it is an error naming its line number."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.commands.plot import main as plot_main
from minigpt.training.runs import METRICS, read_metrics

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
records = st.lists(
    st.fixed_dictionaries({"step": st.integers(0, 10**6), "loss": finite}, optional={"lr": finite, "mfu": finite}),
    min_size=1,
    max_size=6,
)


def _write(run: Path, lines: list[str], text_end: str = "\n") -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / METRICS).write_text("\n".join(lines) + text_end, encoding="utf-8")
    return run


@settings(max_examples=40)
@given(records=records, data=st.data())
def test_a_last_line_cut_anywhere_is_skipped_with_one_warning(records, data):
    lines = [json.dumps(r) for r in records]
    cut = data.draw(st.integers(1, len(lines[-1]) - 1), label="characters of the last line that were written")
    warnings: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        run = _write(Path(tmp), [*lines[:-1], lines[-1][:cut]], text_end="")
        assert read_metrics(run, warn=warnings.append) == records[:-1]
    assert len(warnings) == 1 and f"metrics.jsonl: skipped line {len(lines)}, which was cut off (" in warnings[0]


@settings(max_examples=40)
@given(records=records, ending=st.sampled_from(["", "\n", "\n\n"]))
def test_complete_lines_read_back_exactly_without_a_warning(records, ending):
    with tempfile.TemporaryDirectory() as tmp:
        run = _write(Path(tmp), [json.dumps(r) for r in records], text_end=ending)
        assert read_metrics(run, warn=pytest.fail) == records


@settings(max_examples=40)
@given(records=records.filter(lambda r: len(r) >= 2), data=st.data())
def test_a_damaged_line_before_the_last_is_an_error_naming_its_number(records, data):
    lines = [json.dumps(r) for r in records]
    bad = data.draw(st.integers(0, len(lines) - 2), label="damaged line (0-based)")
    lines[bad] = data.draw(st.sampled_from([lines[bad][: len(lines[bad]) // 2], "\x00\x00\x00", "[1, 2]", "}{"]))
    with tempfile.TemporaryDirectory() as tmp:
        run = _write(Path(tmp), lines)
        with pytest.raises(ValueError, match=rf"metrics\.jsonl: line {bad + 1} is damaged \(.*\); repair or delete"):
            read_metrics(run, warn=pytest.fail)


def test_minigpt_plot_draws_a_run_whose_last_line_was_cut_off(tmp_path, capsys):
    lines = [json.dumps({"step": s, "loss": 4.0 - s / 10}) for s in range(1, 6)]
    lines += [json.dumps({"step": 5, "val_loss": 3.6}), '{"step": 6, "loss": 3.4, "lr": 0.0']
    run = _write(tmp_path / "run", lines, text_end="")
    assert plot_main([str(run)]) == 0
    captured = capsys.readouterr()
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert captured.err.strip() == (
        f"warning: {run / METRICS}: skipped line 7, which was cut off (Expecting ',' delimiter at column 35)"
    )

    _write(run, [lines[0], lines[1][:-3], *lines[2:6]])  # a damaged line in the middle: refused, in one line
    assert plot_main([str(run)]) == 2
    err = capsys.readouterr().err.strip()
    reason = "Expecting ',' delimiter at column 22"
    assert err == f"minigpt plot: error: {run / METRICS}: line 2 is damaged ({reason}); repair or delete that line"
