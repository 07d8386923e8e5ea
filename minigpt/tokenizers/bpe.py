"""Byte-level byte-pair encoding (BPE), as in GPT-2, written from scratch.

Three steps turn text into ids:

1. **Pre-tokenise** with GPT-2's regex: contractions, runs of letters, digits, other symbols and
   whitespace, each optionally preceded by one space. Merges never cross these boundaries.
2. **Bytes → symbols.** Each pre-token's UTF-8 bytes are mapped one-to-one onto 256 printable
   characters (``bytes_to_unicode``), so every string, in any script, is a sequence of known symbols:
   there is no unknown token.
3. **Merge.** Repeatedly merge the adjacent pair with the lowest *rank* (the order in which training
   learned the merges): ``w = (.., a, b, ..) → (.., ab, ..)``, until no adjacent pair has a rank.

Training (``minigpt.tokenizers.bpe_train``) learns the merges greedily: start from the 256 byte symbols; at each
step count every adjacent pair over the corpus, ``count(a, b) = Σ_words freq(word) · #occurrences of (a, b) in
word``, merge the most frequent pair (ties → the pair with the smallest ids), until ``vocab_size`` tokens exist.

Files are GPT-2's: ``vocab.json`` (token string → id) and ``merges.txt`` (``#version: 0.2`` then one
``left right`` pair per line, in rank order), so files written by OpenAI's GPT-2 or by Hugging Face
``tokenizers`` load here, and ours load there.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import regex

from minigpt import atomic
from minigpt.tokenizers.bpe_train import learn_merges
from minigpt.tokenizers.special import text_matchable

# GPT-2's pre-tokenisation pattern (encoder.py in openai/gpt-2), unchanged.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"
_NO_RANK = 1 << 62  # larger than any merge rank; keeps `min` over plain ints


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map byte → printable character.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, soft hyphen) map to
    ``chr(256 + k)`` in byte order, so a space becomes ``Ġ`` (U+0120) and a newline ``Ċ`` (U+010A).
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out = {b: chr(b) for b in keep}
    k = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + k)
            k += 1
    return out


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 pre-tokens; ``"".join(pretokenize(s)) == s``."""
    return _PATTERN.findall(text)


_PATTERN = regex.compile(GPT2_PATTERN)


def special_splitter(special: Iterable[str]) -> regex.Pattern | None:
    """Regex that splits text around special-token strings (longest first, so ``<a><b>`` beats ``<a>``)."""
    toks = sorted(special, key=len, reverse=True)
    return regex.compile("(" + "|".join(regex.escape(t) for t in toks) + ")") if toks else None


class ByteLevelBPE:
    """GPT-2 byte-level BPE: ``encode(str) -> list[int]``, ``decode(ids) -> str``, GPT-2 files.

    ``vocab`` maps token strings (in the byte-symbol alphabet) to ids ``0..V-1``; ``merges`` lists the
    pairs in rank order; ``special_tokens`` are strings (already in ``vocab``) that ``encode`` matches
    literally before pre-tokenisation and that no merge produces, e.g. ``<|endoftext|>``.
    """

    kind = "bpe"

    def __init__(
        self, vocab: dict[str, int], merges: Sequence[tuple[str, str]], special_tokens: Sequence[str] = ()
    ) -> None:
        ids = sorted(vocab.values())
        if ids != list(range(len(ids))):
            raise ValueError(
                f"vocab ids must be exactly 0..{len(ids) - 1} with no gaps or repeats; "
                f"got {len(ids)} tokens with ids in [{ids[0] if ids else None}, {ids[-1] if ids else None}]"
            )
        missing = [b for b, c in BYTE_TO_UNICODE.items() if c not in vocab]
        if missing:
            raise ValueError(
                f"vocab lacks {len(missing)} of the 256 byte symbols (first: byte {missing[0]}, "
                f"symbol {BYTE_TO_UNICODE[missing[0]]!r}); byte-level BPE needs all of them to encode any text"
            )
        for tok in special_tokens:
            if tok not in vocab:
                raise ValueError(f"special token {tok!r} is not in the vocab; add it with add_special_tokens")
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self._special = {t: vocab[t] for t in special_tokens}
        self._id_to_token = {i: t for t, i in vocab.items()}
        self._byte_ids = [vocab[BYTE_TO_UNICODE[b]] for b in range(256)]  # byte value → id
        self._rank: dict[tuple[int, int], int] = {}
        self._merged: dict[tuple[int, int], int] = {}
        for rank, (a, b) in enumerate(self.merges):
            if a not in vocab or b not in vocab or a + b not in vocab:
                raise ValueError(f"merge {rank} ({a!r}, {b!r}): its parts and their join must all be in the vocab")
            pair = (vocab[a], vocab[b])
            self._rank.setdefault(pair, rank)  # a repeated merge keeps its first (lowest) rank
            self._merged[pair] = vocab[a + b]
        self._cache: dict[str, list[int]] = {}
        self._rebuild_decoder()

    def _rebuild_decoder(self) -> None:
        self._id_bytes: list[bytes] = [b""] * len(self.vocab)
        for tok, i in self.vocab.items():
            if tok in self._special:
                self._id_bytes[i] = tok.encode("utf-8")
            elif all(c in UNICODE_TO_BYTE for c in tok):
                self._id_bytes[i] = bytes(UNICODE_TO_BYTE[c] for c in tok)
            else:  # a token outside the byte alphabet that is not declared special: decode it literally
                self._id_bytes[i] = tok.encode("utf-8")
        self._splitter = special_splitter(text_matchable(self._special))

    # ------------------------------------------------------------------ interface shared with CharTokenizer
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string → id."""
        return dict(self._special)

    @property
    def eot_id(self) -> int | None:
        """Id of ``<|endoftext|>`` if this tokenizer has it."""
        return self._special.get(EOT)

    def token_to_id(self, token: str) -> int:
        if token not in self.vocab:
            raise ValueError(f"{token!r} is not a token of this vocab")
        return self.vocab[token]

    def id_to_token(self, i: int) -> str:
        if i not in self._id_to_token:
            raise ValueError(f"token id {i} is outside the vocab [0, {self.vocab_size})")
        return self._id_to_token[i]

    def add_special_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Append special tokens (new ids at the end of the vocab, e.g. ``<pos>``, ``<neg>``); return their ids.

        A token already special keeps its id. Merges are unchanged, so the other ids do not move.
        """
        out = []
        for tok in tokens:
            if tok in self._special:
                out.append(self._special[tok])
                continue
            if not tok:
                raise ValueError("a special token must be a non-empty string")
            if tok in self.vocab:
                raise ValueError(f"{tok!r} is already an ordinary token of this vocab; pick another string")
            self.vocab[tok] = len(self.vocab)
            self._id_to_token[self.vocab[tok]] = tok
            self._special[tok] = self.vocab[tok]
            out.append(self.vocab[tok])
        self._rebuild_decoder()
        self._cache.clear()
        return out

    # ------------------------------------------------------------------ encode / decode
    def _bpe(self, ids: list[int]) -> list[int]:
        """Merge the lowest-ranked adjacent pair (leftmost on ties) until none is left; ``ids`` is modified.

        ``r[k]`` is the rank of the pair ``(ids[k], ids[k+1])``; a merge at ``j`` only changes its neighbours.
        """
        rank = self._rank.get
        r = [rank(p, _NO_RANK) for p in pairwise(ids)]
        while r:
            m = min(r)
            if m == _NO_RANK:
                break
            j = r.index(m)
            new = self._merged[ids[j], ids[j + 1]]
            ids[j : j + 2] = [new]
            del r[j]
            if j > 0:
                r[j - 1] = rank((ids[j - 1], new), _NO_RANK)
            if j < len(r):
                r[j] = rank((new, ids[j + 1]), _NO_RANK)
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        out: list[int] = []
        cache, byte_ids = self._cache, self._byte_ids
        for piece in _PATTERN.findall(text):
            ids = cache.get(piece)
            if ids is None:
                ids = cache[piece] = self._bpe([byte_ids[b] for b in piece.encode("utf-8")])
            out.extend(ids)
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special-token strings in ``text`` become their single ids, except the chat tokens,
        whose characters stay ordinary text (``minigpt.tokenizers.special``)."""
        if not isinstance(text, str):
            raise ValueError(f"encode expects a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"text is not valid Unicode at index {e.start} ({text[e.start]!r}, a lone surrogate)"
            ) from None
        if self._splitter is None:
            return self._encode_ordinary(text)
        out: list[int] = []
        for k, part in enumerate(self._splitter.split(text)):
            if k % 2:  # odd parts are the captured special tokens
                out.append(self._special[part])
            elif part:
                out.extend(self._encode_ordinary(part))
        return out

    def token_bytes(self, i: int) -> bytes:
        """The exact bytes token ``i`` stands for (may be part of a UTF-8 character)."""
        if not 0 <= int(i) < len(self._id_bytes):
            raise ValueError(f"token id {i} is outside the vocab [0, {len(self._id_bytes)})")
        return self._id_bytes[int(i)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``. Byte sequences that are not valid UTF-8 (a model can emit half a character)
        decode to U+FFFD, as in GPT-2."""
        table, V = self._id_bytes, len(self._id_bytes)
        chunks = []
        for i in ids:
            i = int(i)
            if not 0 <= i < V:
                raise ValueError(f"token id {i} is outside the vocab [0, {V})")
            chunks.append(table[i])
        return b"".join(chunks).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] = (EOT,),
        min_frequency: int = 2,
    ) -> ByteLevelBPE:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``texts``.

        Layout (the same as Hugging Face ``tokenizers``): special tokens get ids ``0..k-1``, then the 256 byte
        symbols sorted by code point, then one id per merge. Training stops early when no pair occurs
        ``min_frequency`` times. Pair counts are updated incrementally: a merge only changes the counts of
        the pairs next to it, in the words that contain it, so training does not recount the corpus.
        """
        base = 256 + len(special_tokens)
        if vocab_size < base:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the base alphabet: 256 byte symbols + "
                f"{len(special_tokens)} special tokens = {base}; use vocab_size ≥ {base}"
            )
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has repeats: {list(special_tokens)}")
        splitter = special_splitter(special_tokens)
        word_freq: Counter[str] = Counter()
        for text in texts:
            for part in splitter.split(text) if splitter else [text]:
                if part not in special_tokens:
                    word_freq.update(_PATTERN.findall(part))

        id_to_tok = list(special_tokens) + sorted(BYTE_TO_UNICODE.values())
        tok_to_id = {t: i for i, t in enumerate(id_to_tok)}
        byte_ids = [tok_to_id[BYTE_TO_UNICODE[b]] for b in range(256)]
        words = [[byte_ids[b] for b in w.encode("utf-8")] for w in word_freq]
        freqs = list(word_freq.values())

        merges = learn_merges(words, freqs, id_to_tok, tok_to_id, vocab_size, min_frequency)
        return cls(tok_to_id, merges, special_tokens)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | os.PathLike) -> None:
        """Write ``vocab.json`` + ``merges.txt`` (GPT-2 format) and ``tokenizer_config.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic.write_text(d / "vocab.json", json.dumps(self.vocab, ensure_ascii=False))
        atomic.write_text(d / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges))
        config = {"kind": self.kind, "special_tokens": list(self._special)}
        atomic.write_text(d / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=1))

    @classmethod
    def from_files(
        cls, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike, special_tokens: Sequence[str] | None = None
    ) -> ByteLevelBPE:
        """Load GPT-2-format files written by any tool (OpenAI GPT-2, Hugging Face ``tokenizers``, ``save``).

        ``special_tokens=None`` means ``<|endoftext|>`` if the vocab has it, else none.
        """
        vocab_path, merges_path = Path(vocab_json), Path(merges_txt)
        for p in (vocab_path, merges_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file (a GPT-2 BPE needs vocab.json and merges.txt)")
        try:
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{vocab_path}: not a valid JSON file ({e}); re-save the tokenizer") from e
        if not isinstance(vocab, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in vocab.items()
        ):
            raise ValueError(f"{vocab_path}: expected a JSON object mapping token strings to integer ids")
        merges = []
        try:
            lines = merges_path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as e:
            raise ValueError(f"{merges_path}: invalid UTF-8 at byte offset {e.start}") from e
        for lineno, line in enumerate(lines, start=1):
            line = line.rstrip("\r")
            if (lineno == 1 and line.startswith("#version")) or not line:
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{merges_path}, line {lineno}: expected 'left right', got {line!r}")
            a, b = parts
            for tok in (a, b, a + b):
                if tok not in vocab:
                    raise ValueError(f"{merges_path}, line {lineno}: token {tok!r} of merge {line!r} is not in vocab")
            merges.append((a, b))
        if special_tokens is None:
            special_tokens = [EOT] if EOT in vocab else []
        try:
            return cls(vocab, merges, special_tokens)
        except ValueError as e:
            raise ValueError(f"{vocab_path}: {e}") from e

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ByteLevelBPE:
        """Load a directory written by ``save`` (special tokens from ``tokenizer_config.json`` if present)."""
        d = Path(directory)
        special = None
        config = d / "tokenizer_config.json"
        if config.is_file():
            try:
                special = json.loads(config.read_text(encoding="utf-8")).get("special_tokens")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
                raise ValueError(f"{config}: corrupted ({e}); re-save the tokenizer") from e
        return cls.from_files(d / "vocab.json", d / "merges.txt", special)

    def __repr__(self) -> str:
        return f"ByteLevelBPE(vocab_size={self.vocab_size}, merges={len(self.merges)}, special={list(self._special)})"
