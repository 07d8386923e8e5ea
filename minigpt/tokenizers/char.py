"""Character-level tokenizer: one id per Unicode code point seen in the training text.

Ids: the special tokens first (``<unk>``, ``<|endoftext|>``, then any added later, such as ``<pos>``),
then every character of the corpus sorted by code point. For Chinese text this is the natural unit
(one character ≈ one morpheme), and the review corpus needs ~5k of them.

Unseen characters. ``encode(text)`` maps a character that is not in the vocab to ``<unk>``, so a user
can type any prompt (an emoji, a rare character) and still sample; ``decode`` shows it as ``<unk>``.
``encode(text, strict=True)`` raises a ``ValueError`` naming the characters instead, which is what
data preparation uses: a corpus must never be silently corrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from minigpt import atomic
from minigpt.tokenizers.bpe import EOT, special_splitter
from minigpt.tokenizers.special import text_matchable

UNK = "<unk>"


class CharTokenizer:
    """``encode(str) -> list[int]`` one id per character; ``decode(ids) -> str``; saved as JSON."""

    kind = "char"

    def __init__(self, chars: Iterable[str], special_tokens: Sequence[str] = (UNK, EOT)) -> None:
        chars = sorted(set(chars))
        bad = [c for c in chars if len(c) != 1]
        if bad:
            raise ValueError(f"chars must be single characters, got {bad[:5]!r}")
        if UNK not in special_tokens:
            raise ValueError(f"special_tokens must include {UNK!r} (the id of unseen characters)")
        for tok in special_tokens:
            if len(tok) < 2:
                raise ValueError(f"special token {tok!r} must be at least two characters, so it cannot be a text char")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has repeats: {list(special_tokens)}")
        self._set_vocab(list(special_tokens) + chars, special_tokens)

    def _set_vocab(self, itos: list[str], special: Iterable[str]) -> None:
        self._itos = itos
        self._stoi = {s: i for i, s in enumerate(itos)}
        self._special = {t: self._stoi[t] for t in special}
        self._splitter = special_splitter(text_matchable(self._special))

    @classmethod
    def from_texts(cls, texts: Iterable[str], special_tokens: Sequence[str] = (UNK, EOT)) -> CharTokenizer:
        """Vocab = every character that occurs in ``texts``."""
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls(chars, special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string → id."""
        return dict(self._special)

    @property
    def unk_id(self) -> int:
        return self._special[UNK]

    @property
    def eot_id(self) -> int | None:
        """Id of ``<|endoftext|>`` if this tokenizer has it."""
        return self._special.get(EOT)

    @property
    def chars(self) -> list[str]:
        """The ordinary (non-special) characters, in id order."""
        return [s for s in self._itos if s not in self._special]

    def token_to_id(self, token: str) -> int:
        if token not in self._stoi:
            raise ValueError(f"{token!r} is not a token of this vocab")
        return self._stoi[token]

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self._itos):
            raise ValueError(f"token id {i} is outside the vocab [0, {len(self._itos)})")
        return self._itos[i]

    def add_special_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Append special tokens (new ids at the end, e.g. ``<pos>``, ``<neg>``); existing ids do not move."""
        out = []
        for tok in tokens:
            if tok not in self._special:
                if len(tok) < 2:
                    raise ValueError(f"special token {tok!r} must be at least two characters")
                self._special[tok] = self._stoi[tok] = len(self._itos)
                self._itos.append(tok)
            out.append(self._special[tok])
        self._splitter = special_splitter(text_matchable(self._special))
        return out

    def _encode_ordinary(self, text: str, strict: bool) -> list[int]:
        stoi = self._stoi
        if strict:
            unseen = sorted({c for c in text if c not in stoi})
            if unseen:
                raise ValueError(
                    f"{len(unseen)} character(s) are not in the vocab: {unseen[:10]!r}; "
                    "rebuild the tokenizer from text that contains them, or use strict=False to map them to <unk>"
                )
        unk = self._special[UNK]
        return [stoi.get(c, unk) for c in text]

    def encode(self, text: str, strict: bool = False) -> list[int]:
        """One id per character; special-token strings become their ids, except the chat tokens, whose
        characters stay ordinary text (``minigpt.tokenizers.special``); unseen characters → ``<unk>``
        (or a ``ValueError`` with ``strict=True``)."""
        if not isinstance(text, str):
            raise ValueError(f"encode expects a str, got {type(text).__name__}")
        out: list[int] = []
        for k, part in enumerate(self._splitter.split(text)):
            if k % 2:
                out.append(self._special[part])
            elif part:
                out.extend(self._encode_ordinary(part, strict))
        return out

    def token_bytes(self, i: int) -> bytes:
        """The UTF-8 bytes of token ``i``."""
        return self.id_to_token(int(i)).encode("utf-8")

    def decode(self, ids: Iterable[int]) -> str:
        itos, V = self._itos, len(self._itos)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < V:
                raise ValueError(f"token id {i} is outside the vocab [0, {V})")
            out.append(itos[i])
        return "".join(out)

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``vocab.json`` (token → id) and ``tokenizer_config.json`` (kind, special tokens) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic.write_text(d / "vocab.json", json.dumps(self._stoi, ensure_ascii=False, indent=0))
        config = {"kind": self.kind, "special_tokens": list(self._special), "unk_token": UNK}
        atomic.write_text(d / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> CharTokenizer:
        d = Path(directory)
        path = d / "vocab.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file; save a CharTokenizer there first")
        try:
            stoi = json.loads(path.read_text(encoding="utf-8"))
            config = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{d}: corrupted tokenizer file ({e}); re-run prepare") from e
        special = config.get("special_tokens", [])
        if not isinstance(stoi, dict) or sorted(stoi.values()) != list(range(len(stoi))):
            raise ValueError(f"{path}: expected a JSON object mapping tokens to the ids 0..V-1")
        itos = sorted(stoi, key=stoi.get)
        bad = [t for t in itos if len(t) != 1 and t not in special]
        if bad or UNK not in special or not set(special) <= set(stoi):
            raise ValueError(
                f"{path}: not a CharTokenizer vocab (multi-character tokens not declared special: {bad[:5]!r}, "
                f"or special tokens {special!r} missing from the vocab / lacking {UNK!r})"
            )
        tok = cls.__new__(cls)
        tok._set_vocab(itos, special)
        return tok

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, special={list(self._special)})"
