"""A prepared data directory: written by ``prepare`` (``minigpt prepare``), read by the ``load_*`` functions.

A prepared data directory holds::

    train.npy, val.npy        1-D token streams (uint16, or uint32 when the vocab exceeds 65536 ids)
    meta.json                 tokenizer kind, vocab_size, source and sha256, cleaning and per-split counts
    tokenizer/                the tokenizer's files (``minigpt.tokenizers.load_tokenizer``)
    {split}_lines.jsonl       labelled corpora only (reviews): one {"text", "label"} per line, in stream order
    {split}_line_offsets.npy  line corpora (reviews, peoples-daily): line i is tokens[off[i]:off[i+1]] ("\\n" included)

In a stream every line (review, news paragraph) is followed by "\\n", so a model learns to end one with a newline.
What is read and how it is split is ``minigpt.data.sources``.

Batches over the token streams are ``minigpt.data.batches``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from minigpt.data import corpus, sources
from minigpt.tokenizers import ByteLevelBPE, CharTokenizer

SPLITS = sources.SPLITS
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------- reading


def _data_dir(directory: str | os.PathLike) -> Path:
    d = Path(directory)
    if not (d / "meta.json").is_file():
        raise FileNotFoundError(
            f"{d}: not a prepared data directory (no meta.json); create it with "
            f"'minigpt prepare reviews --out {d}' or 'minigpt prepare FILE.txt --out {d}'"
        )
    return d


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def load_meta(directory: str | os.PathLike) -> dict:
    """The data directory's ``meta.json``."""
    path = _data_dir(directory) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: corrupted ({e}); re-run minigpt prepare") from e
    vocab = meta.get("vocab_size") if isinstance(meta, dict) else None
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1:
        raise ValueError(f"{path}: must hold a positive integer 'vocab_size', got {vocab!r}; re-run minigpt prepare")
    return meta


def load_split(directory: str | os.PathLike, split: str) -> np.ndarray:
    """The 1-D token stream of ``split`` ('train' or 'val'), uint16/uint32."""
    split = _check_split(split)
    path = _data_dir(directory) / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; re-run minigpt prepare")
    tokens = np.load(path, allow_pickle=False)
    if tokens.ndim != 1 or tokens.dtype not in (np.uint16, np.uint32):
        raise ValueError(f"{path}: expected a 1-D uint16/uint32 array, got shape {tokens.shape} dtype {tokens.dtype}")
    vocab_size = load_meta(directory)["vocab_size"]
    if len(tokens) and int(tokens.max()) >= vocab_size:  # JAX would clamp such ids silently
        raise ValueError(f"{path}: token id {int(tokens.max())} ≥ vocab_size {vocab_size}; re-run minigpt prepare")
    return tokens


def load_lines(directory: str | os.PathLike, split: str) -> list[tuple[str, str]]:
    """(text, label) per line of ``split``, label 'pos' or 'neg', in the order of the token stream."""
    d = _data_dir(directory)
    path = d / f"{_check_split(split)}_lines.jsonl"
    if not path.is_file():
        raise ValueError(
            f"{d} was prepared from {load_meta(d).get('source')!r}, which has no per-line sentiment labels; "
            "labelled lines exist for 'minigpt prepare reviews'"
        )
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                rec = json.loads(line)
                out.append((rec["text"], rec["label"]))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}, line {lineno}: corrupted record ({e}); re-run minigpt prepare") from e
    return out


def load_line_offsets(directory: str | os.PathLike, split: str) -> np.ndarray:
    """int64 (n_lines + 1,): line i of ``load_lines`` is ``load_split(...)[off[i]:off[i+1]]``, its "\\n" included."""
    d = _data_dir(directory)
    path = d / f"{_check_split(split)}_line_offsets.npy"
    if not path.is_file():
        raise ValueError(f"{d}: no line offsets (the source had no labelled lines)")
    return np.load(path, allow_pickle=False)


# ---------------------------------------------------------------------------------------------- writing


def build_tokenizer(kind: str, vocab_size: int | None, corpora: list[sources.Source]):
    """The tokenizer over ``corpora``: char = every character of their text (both splits); bpe = trained on the
    concatenation of their train splits, in the order given."""

    if kind == "char":
        if vocab_size is not None:
            raise ValueError("--vocab-size applies to bpe only; a char vocab is every character of the corpus")
        return CharTokenizer.from_texts(t for src in corpora for t in src.texts.values())
    if kind == "bpe":
        if vocab_size is None:
            raise ValueError("bpe needs --vocab-size N (N ≥ 257: 256 byte symbols + <|endoftext|>, e.g. 2048)")
        return ByteLevelBPE.train([t for src in corpora for t in src.train_texts()], vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}; choose 'char' or 'bpe'")


def _encode(tok, text: str) -> list[int]:
    return tok.encode(text, strict=True) if tok.kind == "char" else tok.encode(text)


def vocab_corpora_names(source: str, vocab_corpora: list[str] | tuple[str, ...]) -> list[str]:
    """The corpora the tokenizer is built over: ``source`` plus ``vocab_corpora``, deduplicated and sorted, so
    every data directory prepared with the same set gets the same tokenizer whichever corpus it holds."""
    return sorted({str(source), *(str(c) for c in vocab_corpora)})


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A fresh temporary folder beside ``out`` that replaces ``out`` only when the ``with`` block completes;
    on any error ``out`` is left as it was and the temporary folder is removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, out: Path) -> None:
    """Put ``tmp`` at ``out``; an existing ``out`` is moved aside first and restored if the rename fails."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def prepare(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tokenizer: str = "char",
    vocab_size: int | None = None,
    val_fraction: float = 0.1,
    vocab_corpora: list[str] | tuple[str, ...] = (),
) -> dict:
    """Tokenise ``source`` ('reviews', 'peoples-daily' or a UTF-8 text file) into the data directory ``out``;
    return its meta.

    Named corpora: cleaned, deduplicated lines, split by a hash of each line (``minigpt.data.sources``), each
    followed by "\\n". Plain files: the text as is, the last ``val_fraction`` is val. The tokenizer is built
    over ``source`` and the corpora in ``vocab_corpora`` (``vocab_corpora_names``): the char vocab covers their
    whole text, BPE is trained on their train splits only. Everything is written under a temporary name and
    renamed at the end, so a failure leaves no partial output.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())):
        raise ValueError(f"{out}: exists and is not a prepared data directory; choose another --out")

    src = sources.read_source(str(source), val_fraction)
    names = vocab_corpora_names(str(source), vocab_corpora)
    corpora = [src if name == str(source) else sources.read_source(name, val_fraction) for name in names]
    tok = build_tokenizer(tokenizer, vocab_size, corpora)
    dtype = np.uint16 if tok.vocab_size <= 2**16 else np.uint32
    meta: dict = {"format_version": FORMAT_VERSION, "val_fraction": val_fraction, **src.meta}
    meta["source_files"] = {
        name: {"path": str(p), "bytes": p.stat().st_size, "sha256": corpus.sha256_file(p)}
        for name, p in src.files.items()
    }
    meta.update(tokenizer=tok.kind, vocab_size=tok.vocab_size, dtype=np.dtype(dtype).name, separator="\n", splits={})
    meta["vocab_corpora"] = [c.meta["source"] for c in corpora]

    with staged_dir(out) as tmp:
        for split in SPLITS:
            meta["splits"][split] = _write_split(tmp, split, src, tok, dtype)
        tok.save(tmp / "tokenizer")
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


def _write_split(tmp: Path, split: str, src: sources.Source, tok, dtype) -> dict:
    """Write ``split``'s token stream (and line offsets, and labelled lines) into ``tmp``; its counts."""
    text = src.texts[split]
    counts = {"lines": text.count("\n"), "chars": len(text)}
    if src.lines is None:
        ids = _encode(tok, text)
    else:
        lines = src.lines[split]
        newline = _encode(tok, "\n")
        ids: list[int] = []
        offsets = [0]
        for line, _ in lines:
            ids += _encode(tok, line) + newline
            offsets.append(len(ids))
        np.save(tmp / f"{split}_line_offsets.npy", np.asarray(offsets, dtype=np.int64))
        if src.labelled:
            with (tmp / f"{split}_lines.jsonl").open("w", encoding="utf-8") as f:
                for line, label in lines:
                    f.write(json.dumps({"text": line, "label": label}, ensure_ascii=False) + "\n")
            counts["labels"] = {lab: sum(1 for _, la in lines if la == lab) for lab in corpus.LABELS}
    np.save(tmp / f"{split}.npy", np.asarray(ids, dtype=dtype))
    counts["tokens"] = len(ids)
    return counts
