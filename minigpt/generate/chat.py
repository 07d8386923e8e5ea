"""Multi-turn chat with an instruction-tuned run: ``Chat(...).reply(text)`` streams the assistant's answer.

The conversation lives in the model's KV cache: each turn feeds only its new tokens (the user message, its
``<|end|>`` and the ``<|assistant|>`` header) on top of what the cache already holds, then decodes the reply
token by token until the model writes ``<|end|>`` (which is not shown) or the reply budget runs out; role tokens
are masked out of a reply (one would open a new turn without closing this one). The
conversation is kept as token ids exactly as the model saw or wrote them, never re-encoded from text. When
the next turn would not fit in the model's context (``block_size``), the oldest exchanges are dropped (the
system prompt stays), ``on_notice`` says so, and the cache is rebuilt from what is left.

Decoding settings are ``minigpt sample``'s: a ``Sampling`` (default greedy, ``Sampling(temperature=0)``; or a draw
with top-k / top-p, a repetition penalty over the conversation, a seed) and banned phrases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.generate.bans import BannedPhrases
from minigpt.generate.jax_decoder import JaxDecoder
from minigpt.generate.sampling import Sampling
from minigpt.generate.text import TextStream
from minigpt.params import Params
from minigpt.tokenizers.chat import chat_token_ids, render_chat
from minigpt.tokenizers.special import ASSISTANT, END, ROLE_TOKENS


class Chat:
    """A conversation with a model whose tokenizer has the chat tokens (``minigpt train --task sft``)."""

    def __init__(
        self,
        cfg: GPTConfig,
        params: Params,
        tokenizer: Any,
        *,
        system: str | None = None,
        max_new_tokens: int = 100,
        sampling: Sampling | None = None,
        ban: Iterable[str] = (),
        on_notice: Callable[[str], None] = print,
    ) -> None:
        if tokenizer is None:
            raise ValueError("the run has no tokenizer, so text cannot be encoded; chat needs a run trained on chats")
        self.ids_of = chat_token_ids(tokenizer)  # a one-line error for a run that was never instruction-tuned
        sampling = Sampling(temperature=0.0) if sampling is None else sampling
        if not isinstance(sampling, Sampling):
            raise ValueError(f"sampling must be a minigpt.generate.Sampling, got {type(sampling).__name__}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {max_new_tokens}")
        self.cfg, self.tokenizer, self.on_notice = cfg, tokenizer, on_notice
        self.decoder = JaxDecoder(params, cfg, seed=sampling.seed)
        self.sampling = sampling.processing
        self.max_new_tokens = max_new_tokens
        ban = [ban] if isinstance(ban, str) else list(ban)
        self.bans = BannedPhrases.from_tokenizer(ban, tokenizer, cfg.vocab_size) if ban else None
        self.system = render_chat([{"role": "system", "content": system}], tokenizer) if system else []
        if len(self.system) + 2 >= cfg.block_size:
            raise ValueError(
                f"the system prompt is {len(self.system)} tokens, the model's context {cfg.block_size}; shorten it"
            )
        self.exchanges: list[list[int]] = []  # each: the user turn's ids + the assistant's reply ids (with <|end|>)
        self.fed: list[int] = []  # what the KV cache holds, in order
        self.t = 0  # decoding steps so far: the sampling key of step t is fold_in(seed, t)

    @classmethod
    def from_run(cls, run_dir: str, step: int | None = None, **options: Any) -> Chat:
        """A ``Chat`` with the newest checkpoint of ``run_dir`` (options as for ``Chat``)."""
        from minigpt.training.runs import load_run

        cfg, params, tokenizer = load_run(run_dir, step=step)
        return cls(cfg, params, tokenizer, **options)

    @property
    def context(self) -> list[int]:
        """The conversation's ids: the system prompt and every exchange kept."""
        return self.system + [i for ex in self.exchanges for i in ex]

    def reply(self, text: str) -> Iterator[str]:
        """Stream the assistant's answer to the user message ``text``, piece by piece (text only, no ``<|end|>``).

        Raises ``ValueError`` (before any token is generated) for an empty message or one that cannot fit.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty message: type some text")
        turn = render_chat([{"role": "user", "content": text}], self.tokenizer) + [self.ids_of[ASSISTANT]]
        T = self.cfg.block_size
        if len(self.system) + len(turn) + 1 > T:
            raise ValueError(
                f"the message is {len(turn)} tokens with its chat tokens; with the system prompt it needs "
                f"{len(self.system) + len(turn) + 1} of the model's {T}-token context (one for the reply); shorten it"
            )
        dropped = 0
        while self.exchanges and len(self.context) + len(turn) + min(self.max_new_tokens, T) > T:
            self.exchanges.pop(0)
            dropped += 1
        if dropped:
            self.on_notice(f"[context full: dropped the {dropped} oldest exchange{'s' * (dropped > 1)}]")
        return self._answer(turn)

    def _answer(self, turn: list[int]) -> Iterator[str]:
        prompt = self.context + turn
        logits = self._feed(prompt)
        budget = min(self.max_new_tokens, self.cfg.block_size - len(prompt))
        seen = np.zeros((1, self.cfg.vocab_size), dtype=bool)
        seen[0, prompt] = True
        tail = self.bans.tail(b"".join(self.bans.pieces[i] for i in prompt)) if self.bans else None
        end, stream, reply = self.ids_of[END], TextStream(self.tokenizer), []
        roles = np.zeros((1, self.cfg.vocab_size), dtype=bool)  # a reply cannot hold a role token: it would end
        roles[0, [self.ids_of[t] for t in ROLE_TOKENS.values()]] = True  # the turn without <|end|>
        for n in range(budget):
            banned = roles if self.bans is None else roles | self.bans.mask(tail)[None]
            token = int(self.decoder.pick(logits, seen, banned, self.t, self.sampling)[0])
            self.t += 1
            reply.append(token)
            if token == end:
                break
            seen[0, token] = True
            if self.bans is not None:
                tail = self.bans.extend(tail, token)
            piece = stream.push(token)
            if piece:
                yield piece
            if n < budget - 1:
                logits = self._feed(prompt + reply)
        else:
            self.on_notice("[reply cut: the token budget or the context ran out before <|end|>]")
            reply.append(end)  # the transcript closes the turn, so the next one renders as the model expects
        rest = stream.flush()
        if rest:
            yield rest
        self.exchanges.append(turn + reply)

    def _feed(self, ids: list[int]) -> np.ndarray:
        """Bring the cache to hold exactly ``ids`` (feeding only what it lacks); the next token's logits (1, V)."""
        if self.fed != ids[: len(self.fed)] or not self.fed:  # turns were dropped, or a new conversation
            self.fed = ids[:1]
            logits = self.decoder.prefill(np.asarray([ids[:1]], dtype=np.int32), np.zeros(1), self.cfg.block_size)
        else:
            logits = self._last
        for i in ids[len(self.fed) :]:
            logits = self.decoder.step(np.asarray([i]))
            self.fed.append(i)
        self._last = logits
        return logits

    def say(self, text: str) -> str:
        """The whole answer to ``text`` as one string."""
        return "".join(self.reply(text))

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.exchanges, self.fed = [], []
