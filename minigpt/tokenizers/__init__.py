"""Tokenizers: text ↔ token ids.

``CharTokenizer`` (one id per character) and ``ByteLevelBPE`` (GPT-2's byte-level BPE) share one interface:
``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``, ``special_tokens`` (str → id),
``token_to_id``, ``id_to_token``, ``eot_id``, ``add_special_tokens([...])`` and ``save(dir)``.
``load_tokenizer(dir)`` reads back either kind. ``render_chat`` / ``parse_chat`` (``chat.py``) turn a
conversation into ids and back with the chat tokens of ``special.py``, which text can never forge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from minigpt.tokenizers.bpe import EOT, GPT2_PATTERN, ByteLevelBPE, bytes_to_unicode, pretokenize
from minigpt.tokenizers.char import UNK, CharTokenizer
from minigpt.tokenizers.chat import add_chat_tokens, chat_token_ids, parse_chat, render_chat, render_chat_with_mask
from minigpt.tokenizers.special import ASSISTANT, CHAT_TOKENS, END, SYSTEM, USER

Tokenizer = CharTokenizer | ByteLevelBPE

__all__ = [
    "ASSISTANT",
    "CHAT_TOKENS",
    "END",
    "EOT",
    "SYSTEM",
    "USER",
    "GPT2_PATTERN",
    "UNK",
    "ByteLevelBPE",
    "CharTokenizer",
    "Tokenizer",
    "add_chat_tokens",
    "bytes_to_unicode",
    "chat_token_ids",
    "load_tokenizer",
    "parse_chat",
    "pretokenize",
    "render_chat",
    "render_chat_with_mask",
]


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer directory written by ``CharTokenizer.save`` or ``ByteLevelBPE.save``.

    The kind comes from ``tokenizer_config.json`` ("kind": "char" | "bpe"); a directory holding only GPT-2's
    ``vocab.json`` + ``merges.txt`` (from any tool) loads as ``ByteLevelBPE``.
    """
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such tokenizer directory")
    config_path = d / "tokenizer_config.json"
    if config_path.is_file():
        try:
            kind = json.loads(config_path.read_text(encoding="utf-8")).get("kind")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise ValueError(f"{config_path}: corrupted ({e}); re-save the tokenizer") from e
        if kind == CharTokenizer.kind:
            return CharTokenizer.load(d)
        if kind == ByteLevelBPE.kind:
            return ByteLevelBPE.load(d)
        raise ValueError(f"{config_path}: unknown tokenizer kind {kind!r}; expected 'char' or 'bpe'")
    if (d / "vocab.json").is_file() and (d / "merges.txt").is_file():
        return ByteLevelBPE.from_files(d / "vocab.json", d / "merges.txt")
    raise FileNotFoundError(
        f"{d}: found neither tokenizer_config.json nor GPT-2's vocab.json + merges.txt; "
        "point to a directory written by a tokenizer's save()"
    )
