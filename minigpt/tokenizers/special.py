"""Special tokens that text can never forge: the chat roles.

A review may well contain the characters ``<|end|>``; if ``encode`` turned them into the special id, a
customer could close the user turn and write the assistant's reply. So the chat tokens are *control*
tokens: ``encode`` always reads their characters as ordinary text, and the only way to put their ids in a
sequence is to ask for the id itself (``tokenizer.token_to_id(END)``), which ``minigpt.tokenizers.chat``
does. Other special tokens (``<|endoftext|>``, ``<pos>``) keep their old behaviour, so tokenizers saved
before the chat tokens existed load and encode exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable

SYSTEM = "<|system|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
CHAT_TOKENS = (*ROLE_TOKENS.values(), END)


def text_matchable(special: Iterable[str]) -> list[str]:
    """The special tokens that ``encode`` may match in text: all but the chat control tokens."""
    return [t for t in special if t not in CHAT_TOKENS]
