"""minigpt.training.progress_lines: plain progress lines instead of tqdm's carriage-return frames when the output is
kept line by line (a file, a CI log)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from train_data import cli_args, write_data

from minigpt.training.progress_lines import INTERVAL_S, ProgressLines, kept_line_by_line

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=50)
@given(
    gaps=st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=60),
    interval=st.sampled_from([0.5, 2.0, 5.0]),
    initial=st.integers(0, 5),
)
def test_lines_come_at_most_once_per_interval_and_the_last_shows_the_end(gaps, interval, initial):
    clock, out = FakeClock(), io.StringIO()
    total = initial + len(gaps)
    bar = ProgressLines(total, initial, file=out, interval=interval, clock=clock)
    times = []  # the clock at each printed line
    for gap in gaps:
        clock.now += gap
        printed = out.getvalue().count("\n")
        bar.set_postfix(loss="1.0000")  # as Progress.record does: the step's numbers, then the step
        bar.update(1)
        if out.getvalue().count("\n") > printed:
            times.append(clock.now)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) in (len(times), len(times) + 1)
    assert all(b - a >= interval for a, b in zip([1000.0, *times], times, strict=False))  # never more often
    assert len(lines) <= sum(gaps) / interval + 1
    assert re.fullmatch(rf"step {total}/{total} \(100%\), \d+:\d\d:\d\d elapsed: loss 1\.0000", lines[-1])
    hms = r"\d+:\d\d:\d\d"
    for line in lines[:-1]:  # before the end, a line also says about how long is left
        assert re.fullmatch(rf"step \d+/\d+ \(\d+%\), {hms} elapsed, about {hms} left: loss 1\.0000", line)


def test_a_quiet_gap_longer_than_the_interval_prints_at_the_next_step():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressLines(100, 0, file=out, interval=5.0, clock=clock)
    clock.now += 4.9
    bar.update(1)
    assert out.getvalue() == ""
    clock.now += 0.1
    bar.update(1)
    assert out.getvalue() == "step 2/100 (2%), 0:00:05 elapsed, about 0:04:05 left\n"


def test_files_and_pipes_are_kept_line_by_line_terminals_are_not(tmp_path):
    with open(tmp_path / "log.txt", "w") as f:
        assert kept_line_by_line(f)
    read, write = os.pipe()
    with os.fdopen(read) as r, os.fdopen(write, "w") as w:
        assert kept_line_by_line(w) and kept_line_by_line(r)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not kept_line_by_line(Terminal())


@pytest.mark.slow
def test_minigpt_train_into_a_log_file_prints_plain_progress_lines(tmp_path):
    data = write_data(tmp_path / "data")
    argv = [*cli_args(data, tmp_path / "run"), "--max_steps", "30", "--progress", "true", "--eval_interval", "10"]
    log = tmp_path / "train.log"
    t0 = time.monotonic()
    with log.open("w") as f:  # `minigpt train ... > train.log 2>&1`, as in CI
        done = subprocess.run(
            [sys.executable, "-m", "minigpt.cli", "train", *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
    wall = time.monotonic() - t0
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    progress = [line for line in text.splitlines() if line.startswith("step ") and "/30 (" in line]
    assert 1 <= len(progress) <= wall / INTERVAL_S + 1, text
    assert progress[-1].startswith("step 30/30 (100%), ")
    assert "step 10: train loss" in text and "done at step 30" in text  # the evaluations' and summary lines too
