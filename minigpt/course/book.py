"""The book: a static site of the executed lessons, their exercises and the README as its front page.

    minigpt book --out build/book [--executed build/executed]

Each lesson is rendered with its outputs (figures, tables, printed lines) by nbconvert's HTML exporter, the tool
the notebooks' own stack already has. Lessons come executed from ``--executed`` when a copy there holds the
same code (the test suite writes one: ``MINIGPT_BOOK_EXECUTED=DIR pytest tests/test_notebooks.py``), and are
executed here otherwise. Math is typeset by MathJax copied into the site from the ``jupyter-server-mathjax``
package, so nothing is fetched from the network when the book is built or read. Links between notebooks
(``exercises/01_attention.ipynb``) become links between pages; the exercise pages link their notebook to download.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minigpt.atomic import write_text
from minigpt.course.assign import EXERCISES, REPO
from minigpt.fonts import SHIPPED

LESSONS = REPO / "notebooks"
EXECUTED_ENV = "MINIGPT_BOOK_EXECUTED"  # where tests/test_notebooks.py saves the lessons it executed
MATHJAX = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
_DOWNLOAD = "minigpt-book-download"  # the download link's placeholder: _relink would turn a .ipynb into its page

# nbconvert's JupyterLab template, less what it would fetch from a CDN (require.js, mermaid), plus the book's bar.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style>{{ resources.book_css }}</style>{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}{{ resources.book_nav }}<main class="book-page">{%- endblock body_header -%}
{%- block body_footer -%}</main>{{ resources.book_nav }}{{ resources.book_probe }}{{ super() }}{%- endblock -%}
"""
# Text outputs and prose in Chinese read in the font the figures use, shipped with the site (so a reader's
# machine needs no CJK font). It comes first in each family list, limited by unicode-range to CJK characters:
# last in the list, Chromium drew boxes from the monospace font rather than fall back to it.
CSS = """
@font-face {
  font-family: "MiniGPT Sans CJK";
  src: url("@UP@fonts/MiniGPTSansCJK-Regular.otf") format("opentype");
  unicode-range: U+2E80-9FFF, U+F900-FAFF, U+FE30-FE4F, U+FF00-FFEF;
}
:root {
  --jp-code-font-family: "MiniGPT Sans CJK", menlo, consolas, "DejaVu Sans Mono", monospace;
  --jp-content-font-family: "MiniGPT Sans CJK", system-ui, -apple-system, "Segoe UI", helvetica, arial, sans-serif;
  --jp-ui-font-family: "MiniGPT Sans CJK", system-ui, -apple-system, "Segoe UI", helvetica, arial, sans-serif;
}
body { margin: 0; font-family: var(--jp-content-font-family); }
.book-page { max-width: 980px; margin: 0 auto; padding: 0 1em; }
.book-nav { background: #24292f; color: #fff; padding: 0.5em 1em; font: 14px sans-serif; }
.book-nav a { color: #9cdcfe; margin-right: 1em; text-decoration: none; }
.book-nav .book-title { color: #fff; font-weight: bold; }
.jp-Cell-inputWrapper, .jp-Cell-outputWrapper { max-width: 100%; }
"""
# Records, once the page has loaded and MathJax has typeset, how many figures loaded, how many failed, and how
# many formulas rendered, and whether the CJK font loaded: what tests/test_course_book.py reads back from a browser.
PROBE = """<script>
window.addEventListener("load", function () {
  // Chinese text is drawn in the shipped font when that font was loaded for the page and the text is as wide
  // as in that font alone (boxes are not). Measured in a block that holds Chinese; "none" if none does.
  var cjk = /[\u4e00-\u9fff]/;
  function first(selector) {
    var all = Array.from(document.querySelectorAll(selector));
    return all.find(function (e) { return cjk.test(e.textContent); });
  }
  var host = first("pre") || first("p, li");  // monospace text first: its fonts are the likeliest to lack CJK
  function width(family) {
    var span = document.createElement("span");
    span.textContent = "这款手机的性能";
    if (family) span.style.fontFamily = family;
    host.appendChild(span);
    var w = span.getBoundingClientRect().width;
    span.remove();
    return w;
  }
  document.fonts.ready.then(function () {  // the fonts the page itself asked for; none is loaded on purpose here
    var loaded = Array.from(document.fonts).some(function (f) {
      return f.family.replace(/"/g, "") === "MiniGPT Sans CJK" && f.status === "loaded";
    });
    var same = host && Math.abs(width("") - width('"MiniGPT Sans CJK"')) < 0.5;
    document.body.dataset.cjkFont = !host ? "none" : loaded && same ? "used" : "boxes";
  });
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesLoaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.imagesBroken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  if (window.MathJax && MathJax.Hub) {
    MathJax.Hub.Queue(function () {
      document.body.dataset.mathRendered = document.querySelectorAll(".MathJax_CHTML, .MathJax").length;
      document.body.dataset.mathErrors = document.querySelectorAll(".MathJax_Error, .merror").length;
    });
  }
});
</script>"""


class BookError(ValueError):
    """The book cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Page:
    source: Path  # the notebook (or README) it is made from
    path: str  # where it goes in the site, e.g. "01_attention.html" or "exercises/01_attention.html"
    title: str


def _title(nb: dict[str, Any], fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _code(nb: Any) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def save_executed(nb: Any, lesson: Path, folder: str | os.PathLike | None = None) -> Path | None:
    """Keep an executed lesson for the book, in ``folder`` or ``$MINIGPT_BOOK_EXECUTED`` (None: not kept)."""
    folder = folder or os.environ.get(EXECUTED_ENV)
    if not folder:
        return None
    import nbformat

    Path(folder).mkdir(parents=True, exist_ok=True)
    target = Path(folder) / lesson.name
    write_text(target, nbformat.writes(nb))  # atomic: a book build reading it meanwhile sees the old or the new
    return target


def executed_lesson(lesson: Path, executed: Path | None, timeout: int = 1200) -> Any:
    """The lesson with its outputs: the copy in ``executed`` when its code is the lesson's, else run it now (and
    keep the run in ``executed``)."""
    import nbformat

    nb = nbformat.read(lesson, as_version=4)
    saved = executed / lesson.name if executed else None
    if saved and saved.is_file():
        copy = nbformat.read(saved, as_version=4)
        if _code(copy) == _code(nb):
            return copy
    import nbclient

    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)  # this minigpt
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3").execute(cwd=str(lesson.parent), env=env)
    if executed:
        save_executed(nb, lesson, executed)  # the next build reuses it
    return nb


def _exporter() -> Any:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.raw_template = TEMPLATE
    exporter.mathjax_url = MATHJAX
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    return exporter


def _nav(pages: Sequence[Page], page: Page, exercise: Page | None, download: bool = False) -> str:
    up = "../" * page.path.count("/")
    links = [f'<a class="book-title" href="{up}index.html">minigpt</a>']
    links += [f'<a href="{up}{p.path}" title="{html.escape(p.title)}">{p.source.stem[:2]}</a>' for p in pages]
    if exercise is not None:
        links.append(f'<a href="{up}{exercise.path}">Exercises for this lesson →</a>')
    if download:
        links.append(f'<a href="{_DOWNLOAD}" download>Download this notebook</a>')  # filled in after _relink
    return '<nav class="book-nav">' + " ".join(links) + "</nav>"


def _relink(text: str, page: Page, where: dict[Path, str]) -> str:
    """``href``s to notebooks (relative to the page's source) that are pages of the book, pointed at the pages."""

    def fix(match: re.Match[str]) -> str:
        target, _, anchor = match.group(1).partition("#")
        if not target or "://" in target or target.startswith(("/", "mailto:", "data:")):
            return match.group(0)
        found = where.get((page.source.parent / target).resolve())
        if found is None:
            return match.group(0)
        new = os.path.relpath(found, os.path.dirname(page.path) or ".").replace(os.sep, "/")
        return f'href="{new}{"#" + anchor if anchor else ""}"'

    return re.sub(r'href="([^"]+)"', fix, text)


def _readme_notebook(readme: Path, contents: str) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(contents), nbformat.v4.new_markdown_cell(readme.read_text("utf-8"))]
    nb.metadata["title"] = "minigpt"
    return nb


def build(
    out: str | Path, *, executed: str | Path | None = None, only: Sequence[str] | None = None, timeout: int = 1200
) -> list[Path]:
    """Write the site into ``out``; ``only``: lesson names (``01_attention``) to include (default: all)."""
    try:
        import nbconvert  # noqa: F401
        import nbformat
        from jupyter_server_mathjax import __file__ as mathjax_init
    except ImportError as e:
        raise BookError(f"the book needs nbconvert and jupyter-server-mathjax ({e}); pip install -e '.[book]'") from e
    lessons = sorted(p for p in LESSONS.glob("[0-9][0-9]_*.ipynb") if not only or p.stem in only)
    if only and len(lessons) != len(set(only)):
        known = ", ".join(p.stem for p in sorted(LESSONS.glob("[0-9][0-9]_*.ipynb")))
        raise BookError(f"unknown lesson in {', '.join(only)}; choose from {known}")
    out = Path(out)
    executed_dir = Path(executed) if executed else None
    notebooks = {p: nbformat.read(p, as_version=4) for p in lessons}
    pages = [Page(p, f"{p.stem}.html", _title(notebooks[p], p.stem)) for p in lessons]
    exercises = {p.stem: EXERCISES / p.name for p in lessons if (EXERCISES / p.name).is_file()}
    exercise_pages = {
        stem: Page(path, f"exercises/{stem}.html", _title(nbformat.read(path, as_version=4), stem))
        for stem, path in exercises.items()
    }
    home = Page(REPO / "README.md", "index.html", "minigpt")
    where = {p.source.resolve(): p.path for p in [*pages, *exercise_pages.values()]}
    where[home.source.resolve()] = home.path
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(mathjax_init).parent / "static", out / "mathjax", dirs_exist_ok=True)
    (out / "fonts").mkdir(exist_ok=True)
    for name in (SHIPPED.name, "OFL.txt"):  # the font's licence travels with it
        shutil.copy2(SHIPPED.with_name(name), out / "fonts" / name)
    exporter = _exporter()
    written = []

    def write(page: Page, nb: Any, nav: str) -> None:
        depth = page.path.count("/")
        exporter.mathjax_url = "../" * depth + MATHJAX
        resources = {
            "book_css": CSS.replace("@UP@", "../" * depth),
            "book_nav": nav,
            "book_probe": PROBE,
            "metadata": {"name": page.title},
        }
        nb.metadata["title"] = page.title
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        target = out / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        body = _relink(body, page, where).replace(_DOWNLOAD, page.source.name)
        target.write_text(body, encoding="utf-8")
        written.append(target)

    toc = ["## The lessons\n"]
    for page in pages:
        line = f"- [{page.title}](notebooks/{page.source.name})"
        if page.source.stem in exercise_pages:
            line += f" · [exercises](notebooks/exercises/{page.source.name})"
        toc.append(line)
    write(home, _readme_notebook(home.source, "\n".join(toc)), _nav(pages, home, None))
    for page in pages:
        nb = executed_lesson(page.source, executed_dir, timeout)
        write(page, nb, _nav(pages, page, exercise_pages.get(page.source.stem)))
    for page in exercise_pages.values():
        write(page, nbformat.read(page.source, as_version=4), _nav(pages, page, None, download=True))
        shutil.copy2(page.source, out / "exercises" / page.source.name)
    (out / "book.json").write_text(
        json.dumps({"pages": [str(p.relative_to(out)) for p in written]}, indent=1) + "\n", encoding="utf-8"
    )
    return written
