"""Text in, text out: the decoding functions behind a tokenizer.

Works with any tokenizer that has ``encode(str) -> list[int]`` and ``decode(list[int]) -> str``
(``minigpt.tokenizers``, or a tiny test double). Streaming emits text only at character
boundaries: a byte-level BPE token may hold part of a UTF-8 character, which ``decode`` renders
as U+FFFD until the rest arrives, so a trailing U+FFFD is held back until the next token (or the end).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from minigpt.config import GPTConfig
from minigpt.generate.bans import BannedPhrases
from minigpt.generate.beam import beam_search
from minigpt.generate.decode import generate, resolve_model, stream


class TextStream:
    """Turns a growing list of token ids into text pieces, each piece ending at a character boundary."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = 0  # characters of decode(ids) already handed out

    def push(self, token: int) -> str:
        """Add one token; return the newly completed text ('' while a character is incomplete)."""
        self.ids.append(int(token))
        text = self.tokenizer.decode(self.ids)
        end = len(text)
        while end > self.emitted and text[end - 1] == "\ufffd":
            end -= 1
        piece, self.emitted = text[self.emitted : end], max(self.emitted, end)
        return piece

    def flush(self) -> str:
        """Whatever is left (including a genuinely undecodable tail) once generation has ended."""
        text = self.tokenizer.decode(self.ids)
        piece, self.emitted = text[self.emitted :], len(text)
        return piece


def encode_prompt(tokenizer: Any, prompt: str, vocab_size: int) -> list[int]:
    """Token ids of ``prompt``; empty or untokenisable prompts are a ``ValueError``."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    ids = [int(i) for i in tokenizer.encode(prompt)]
    if not ids:
        raise ValueError(f"prompt {prompt!r} encodes to no tokens; give some text the tokenizer knows")
    return ids


Bans = Iterable[str] | str | BannedPhrases | None  # phrases to ban, or masks already built


def banned_phrases(bans: Bans, tokenizer: Any, vocab_size: int, ban: Bans = None) -> BannedPhrases | None:
    """``bans`` as masks: phrases (a string or strings) are checked against the tokenizer and built.

    ``ban`` is the keyword's old name, still accepted (giving both is an error, not a silent choice).
    """
    if ban is not None:
        if bans is not None:
            raise ValueError("pass banned phrases once, as bans=...; ban= is its old name")
        bans = ban
    if bans is None or isinstance(bans, BannedPhrases):
        return bans
    phrases = [bans] if isinstance(bans, str) else list(bans)
    return BannedPhrases.from_tokenizer(phrases, tokenizer, vocab_size) if phrases else None


def stream_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    cfg: GPTConfig | None = None,
    *,
    bans: Bans = None,
    ban: Bans = None,
    **kwargs: Any,
) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text pieces while it is generated.

    ``bans``: phrases (strings) the continuation must never contain, or a ``BannedPhrases``. Other keyword
    arguments as in
    ``minigpt.generate.stream`` (max_new_tokens, sampling or its keywords, stop_tokens, backend, use_cache,
    crop_prompt).
    """
    _, cfg, _ = resolve_model(model, cfg, kwargs.get("backend"))
    ids = encode_prompt(tokenizer, prompt, cfg.vocab_size)
    steps = stream(model, [ids], cfg, bans=banned_phrases(bans, tokenizer, cfg.vocab_size, ban), **kwargs)

    def pieces() -> Iterator[str]:
        text = TextStream(tokenizer)
        for step in steps:
            if step[0] >= 0:
                piece = text.push(int(step[0]))
                if piece:
                    yield piece
        rest = text.flush()
        if rest:
            yield rest

    return pieces()


def generate_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    cfg: GPTConfig | None = None,
    *,
    bans: Bans = None,
    ban: Bans = None,
    **kwargs: Any,
) -> str:
    """The continuation of ``prompt`` as one string (JAX: one jitted loop when there are no bans)."""
    _, cfg, _ = resolve_model(model, cfg, kwargs.get("backend"))
    ids = encode_prompt(tokenizer, prompt, cfg.vocab_size)
    out = generate(model, [ids], cfg, bans=banned_phrases(bans, tokenizer, cfg.vocab_size, ban), **kwargs)
    return tokenizer.decode(out[0])


def beam_search_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    cfg: GPTConfig | None = None,
    *,
    bans: Bans = None,
    ban: Bans = None,
    **kwargs: Any,
) -> list[tuple[str, float]]:
    """(continuation text, score) of the best beams, best first; kwargs as in ``beam_search``."""
    _, cfg, _ = resolve_model(model, cfg, kwargs.get("backend"))
    ids = encode_prompt(tokenizer, prompt, cfg.vocab_size)
    hyps = beam_search(model, ids, cfg, bans=banned_phrases(bans, tokenizer, cfg.vocab_size, ban), **kwargs)
    return [(tokenizer.decode(h.tokens), h.score) for h in hyps]
