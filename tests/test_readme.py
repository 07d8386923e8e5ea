"""The two READMEs stay in step: README.zh-CN.md is linked from the top of README.md and gives the same
commands and code; the README's instructor example is a working assignment."""

from __future__ import annotations

import re
from pathlib import Path

from minigpt.testing.grader.runner import grade

ROOT = Path(__file__).resolve().parents[1]
EN = (ROOT / "README.md").read_text(encoding="utf-8")
ZH = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def shell_commands(text: str) -> list[str]:
    return [
        line.strip()
        for lang, body in FENCE.findall(text)
        if lang == "bash"
        for line in body.splitlines()
        if line.strip()
    ]


def inline_commands(text: str) -> set[str]:
    spans = re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
    return {s for s in spans if s.startswith(("minigpt ", "pip install", "python bench/", "bash ", "hf download"))}


def test_the_english_readme_links_the_chinese_one_at_the_top():
    assert "(README.zh-CN.md)" in "\n".join(EN.splitlines()[:5])
    assert "(README.md)" in "\n".join(ZH.splitlines()[:5])


def test_both_readmes_give_the_same_shell_commands():
    en, zh = shell_commands(EN), shell_commands(ZH)
    assert en and en == zh
    assert 'pip install -e ".[notebooks]" && jupyter lab notebooks/' in en


def test_both_readmes_give_the_same_inline_commands_and_code():
    assert inline_commands(EN) == inline_commands(ZH)
    assert [b for lang, b in FENCE.findall(EN) if lang != "bash"] == [
        b for lang, b in FENCE.findall(ZH) if lang != "bash"
    ]
    assert len(re.findall(r"^## ", EN, re.M)) == len(re.findall(r"^## ", ZH, re.M))


def test_the_readme_instructor_example_is_a_working_assignment(tmp_path):
    example = next(body for lang, body in FENCE.findall(EN) if lang == "python" and "Assignment(" in body)
    (tmp_path / "hw1.py").write_text(example, encoding="utf-8")
    (tmp_path / "alice.py").write_text(
        "import numpy as np\n\n\ndef softmax(x):\n    e = np.exp(x - x.max(-1, keepdims=True))\n"
        "    return e / e.sum(-1, keepdims=True)\n",
        encoding="utf-8",
    )
    report = grade(tmp_path / "alice.py", assignment=f"{tmp_path / 'hw1.py'}:hw", student_id="alice", timeout=30)
    assert report.max_score == 4 and report.score == 4, [c.output for c in report.checks]
    assert any(c.hidden for c in report.checks)
