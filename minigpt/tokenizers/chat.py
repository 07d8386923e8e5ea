"""The chat format: a conversation as one token sequence, and back.

A conversation is a list of messages ``{"role": "system" | "user" | "assistant", "content": str}``; it is
rendered as ::

    <|system|>You reply to reviews.<|end|><|user|>物流很快<|end|><|assistant|>感谢您的好评……<|end|>

where each ``<|role|>`` and ``<|end|>`` is one special id, taken from the tokenizer by name and never by
encoding text (``minigpt.tokenizers.special``): a review that contains the characters ``<|end|>`` stays
ordinary text and cannot end its turn. A model learns to answer by predicting the tokens after
``<|assistant|>``, up to and including the ``<|end|>`` that closes its reply, which is where generation stops.
``render_chat_with_mask`` marks exactly those tokens: the supervised fine-tuning loss counts only them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from minigpt.tokenizers.special import CHAT_TOKENS, END, ROLE_TOKENS

Message = dict[str, str]


class ChatTokenizer(Protocol):
    """What the chat format needs of a tokenizer (``CharTokenizer`` and ``ByteLevelBPE`` both are one)."""

    @property
    def special_tokens(self) -> dict[str, int]: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def add_special_tokens(self, tokens: Sequence[str]) -> list[int]: ...


def add_chat_tokens(tok: ChatTokenizer) -> dict[str, int]:
    """Give ``tok`` the chat tokens (new ids at the end of the vocab; existing ids do not move); token → id."""
    return dict(zip(CHAT_TOKENS, tok.add_special_tokens(list(CHAT_TOKENS)), strict=True))


def has_chat_tokens(tok: ChatTokenizer) -> bool:
    """Whether ``tok`` holds every chat token (a tokenizer prepared for instruction tuning)."""
    return all(t in tok.special_tokens for t in CHAT_TOKENS)


def chat_token_ids(tok: ChatTokenizer) -> dict[str, int]:
    """Chat token → id; a one-line ``ValueError`` if ``tok`` was never given them."""
    special = tok.special_tokens
    missing = [t for t in CHAT_TOKENS if t not in special]
    if missing:
        raise ValueError(
            f"the tokenizer has no chat tokens {missing}: this model was never instruction-tuned; "
            "fine-tune it first (minigpt prepare review-replies, then minigpt train --task sft)"
        )
    return {t: special[t] for t in CHAT_TOKENS}


def _check_messages(messages: Sequence[Message]) -> None:
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValueError(f"message {k} must be a dict with exactly the keys 'role' and 'content', got {m!r}")
        if m["role"] not in ROLE_TOKENS:
            raise ValueError(f"message {k} has role {m['role']!r}; use one of {sorted(ROLE_TOKENS)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"message {k}'s content must be a str, got {type(m['content']).__name__}")
        if m["role"] == "system" and k != 0:
            raise ValueError(f"message {k} is a system message; only the first message may be one")


def render_chat_with_mask(
    messages: Sequence[Message], tok: ChatTokenizer, *, add_generation_prompt: bool = False
) -> tuple[list[int], list[bool]]:
    """``(ids, mask)``: the conversation's ids and, per id, whether the model is trained to produce it.

    ``mask`` is True on each assistant message's content and on the ``<|end|>`` that closes it — not on the
    ``<|assistant|>`` header, nor on any system or user token. ``add_generation_prompt`` appends
    ``<|assistant|>`` so that a model continues with a reply.
    """
    _check_messages(messages)
    ids_of = chat_token_ids(tok)
    ids: list[int] = []
    mask: list[bool] = []
    for m in messages:
        body = tok.encode(m["content"]) + [ids_of[END]]
        ids += [ids_of[ROLE_TOKENS[m["role"]]], *body]
        mask += [False] + [m["role"] == "assistant"] * len(body)
    if add_generation_prompt:
        ids.append(ids_of[ROLE_TOKENS["assistant"]])
        mask.append(False)
    return ids, mask


def render_chat(messages: Sequence[Message], tok: ChatTokenizer, *, add_generation_prompt: bool = False) -> list[int]:
    """The conversation's token ids: ``<|role|>content<|end|>`` per message (see the module docstring)."""
    return render_chat_with_mask(messages, tok, add_generation_prompt=add_generation_prompt)[0]


def parse_chat(ids: Sequence[int], tok: ChatTokenizer) -> list[Message]:
    """The messages of a rendered conversation: the inverse of ``render_chat``.

    A last message that is not closed by ``<|end|>`` (a reply still being generated, or an empty one after
    the generation prompt) is returned as far as it goes. Ids out of place — content before any role token,
    a role token inside an open message, ``<|end|>`` with no message open — are a ``ValueError`` naming
    the position.
    """
    ids_of = chat_token_ids(tok)
    role_of = {ids_of[t]: role for role, t in ROLE_TOKENS.items()}
    end = ids_of[END]
    messages: list[Message] = []
    role: str | None = None
    content: list[int] = []
    for pos, i in enumerate(int(i) for i in ids):
        if role is None:
            if i not in role_of:
                raise ValueError(f"position {pos}: expected a role token {list(ROLE_TOKENS.values())}, got id {i}")
            role = role_of[i]
        elif i == end:
            messages.append({"role": role, "content": tok.decode(content)})
            role, content = None, []
        elif i in role_of:
            raise ValueError(f"position {pos}: a new {role_of[i]!r} message starts before the {role!r} one ended")
        else:
            content.append(i)
    if role is not None:
        messages.append({"role": role, "content": tok.decode(content)})
    return messages
