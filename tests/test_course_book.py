"""The book: lesson 01 built into a site (reusing the executed copy tests/test_notebooks.py saves when
MINIGPT_BOOK_EXECUTED is set, executing it otherwise) and opened in a real headless Chromium: the page has its
title, its figure loaded, its formulas typeset by the bundled MathJax, no error text and nothing from the web."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from minigpt.course.book import EXECUTED_ENV, BookError, build

pytest.importorskip("nbconvert", reason="install the dev extras: pip install -e '.[dev]'")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert found, "the book test opens pages in headless Chromium: apt-get install -y chromium"
    return found


def browse(url: str, *extra: str) -> str:
    """Chromium, headless and cut off from the network's services, on ``url``; its stdout (the DOM with --dump-dom)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile}", "--virtual-time-budget=20000", *extra, url]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    build(out, executed=os.environ.get(EXECUTED_ENV), only=["01_attention"])
    return out


@pytest.mark.slow
def test_a_lesson_page_renders_in_a_real_browser(book):
    page = book / "01_attention.html"
    dom = browse(page.as_uri(), "--dump-dom")
    assert re.search(r"<title>1 · Scaled dot-product attention, from scratch</title>", dom)
    body = re.search(r"<body[^>]*>", dom).group(0)
    data = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert int(data["images-loaded"]) >= 1 and data["images-broken"] == "0", body  # the heat-map is there
    assert int(data["math-rendered"]) >= 5 and data["math-errors"] == "0", body  # MathJax typeset, offline
    front = dict(
        re.findall(
            r'data-([a-z-]+)="([^"]*)"',
            re.search(r"<body[^>]*>", browse((book / "index.html").as_uri(), "--dump-dom")).group(0),
        )
    )
    assert front["cjk-font"] == "used", front  # the README's Chinese reads in the shipped font, not as boxes
    for text in ("Traceback (most recent call last)", "Math Processing Error", "NameError", "ModuleNotFoundError"):
        assert text not in dom
    shot = book / "01_attention.png"
    browse(page.as_uri(), f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_nothing_is_fetched_from_the_web_and_the_exercises_are_linked(book):
    for page in (book / "index.html", book / "01_attention.html", book / "exercises" / "01_attention.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r'<(script|img)[^>]+src="(https?:)?//', text), page  # no CDN: MathJax is local
        assert not re.search(r'<link[^>]+href="(https?:)?//', text), page
        assert 'src="mathjax/MathJax.js' in text or 'src="../mathjax/MathJax.js' in text
    assert (book / "mathjax" / "MathJax.js").is_file() and (book / "fonts" / "OFL.txt").is_file()
    lesson = (book / "01_attention.html").read_text(encoding="utf-8")
    assert 'href="exercises/01_attention.html"' in lesson
    exercise = (book / "exercises" / "01_attention.html").read_text(encoding="utf-8")
    assert 'href="../01_attention.html"' in exercise and re.search(
        r'<a download="" href="01_attention.ipynb">', exercise
    )
    assert (book / "exercises" / "01_attention.ipynb").is_file()
    index = (book / "index.html").read_text(encoding="utf-8")
    assert "A from-scratch, educational GPT" in index and 'href="01_attention.html"' in index  # the README


def test_an_unknown_lesson_is_one_line_naming_the_choices(tmp_path):
    with pytest.raises(BookError, match="unknown lesson in 99_nothing; choose from 01_attention, "):
        build(tmp_path, only=["99_nothing"])


def test_a_saved_execution_is_reused_only_while_its_code_is_the_lessons(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    from minigpt.course import book as B

    lesson = B.LESSONS / "01_attention.ipynb"
    nb = nbformat.read(lesson, as_version=4)
    nb.cells[0].source += "\n\nSAVED-COPY"
    monkeypatch.setenv(EXECUTED_ENV, str(tmp_path))
    assert B.save_executed(nb, lesson) == tmp_path / lesson.name
    ran = []
    monkeypatch.setattr(
        nbclient, "NotebookClient", lambda nb, **kw: type("C", (), {"execute": lambda s, **k: ran.append(1)})()
    )
    assert "SAVED-COPY" in B.executed_lesson(lesson, tmp_path).cells[0].source and not ran
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\nprint('changed')"
    B.save_executed(nb, lesson)
    assert "SAVED-COPY" not in B.executed_lesson(lesson, tmp_path).cells[0].source and ran == [1]
    assert "SAVED-COPY" not in nbformat.read(tmp_path / lesson.name, as_version=4).cells[0].source  # kept anew
