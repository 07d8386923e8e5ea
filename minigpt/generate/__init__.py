"""Decoding: KV cache, greedy/temperature/top-k/top-p sampling, repetition penalty, beam search,
banned phrases and streaming, for the NumPy reference and the JAX model.

    from minigpt.generate import generate, beam_search, generate_text, stream_text
    generate(model, [[1, 2, 3], [4, 5]], max_new_tokens=20, sampling=Sampling(temperature=0.8, top_k=40, seed=0))

Modules: ``processors`` (logits filters), ``sampling`` (``Sampling``: how the next token is picked), ``decode``
(the loops and the NumPy decoder, on the reference's ``minigpt.reference.kv_cache``), ``jax_decoder`` (the JAX
model on its ``minigpt.model.KVCache``), ``beam`` (beam search), ``bans`` (banned phrases), ``text``
(tokenizer-level helpers and streaming text), ``chat`` (multi-turn chat on one KV cache). ``JaxDecoder`` and
``Chat`` load JAX on first use, so NumPy decoding
(``backend="numpy"``) runs without it.
"""

from typing import Any

from minigpt.generate.bans import BannedPhrases, token_bytes
from minigpt.generate.beam import Hypothesis, beam_search
from minigpt.generate.decode import ReferenceDecoder, generate, make_decoder, prepare_prompts, stream
from minigpt.generate.processors import (
    apply_repetition_penalty,
    apply_temperature,
    check_sampling,
    process_logits,
    top_k_filter,
    top_p_filter,
)
from minigpt.generate.sampling import Sampling
from minigpt.generate.text import TextStream, beam_search_text, generate_text, stream_text
from minigpt.reference.kv_cache import ReferenceKVCache, forward_cached_numpy

__all__ = [
    "Chat",
    "BannedPhrases",
    "Hypothesis",
    "JaxDecoder",
    "ReferenceDecoder",
    "ReferenceKVCache",
    "Sampling",
    "TextStream",
    "apply_repetition_penalty",
    "apply_temperature",
    "beam_search",
    "beam_search_text",
    "check_sampling",
    "forward_cached_numpy",
    "generate",
    "generate_text",
    "make_decoder",
    "prepare_prompts",
    "process_logits",
    "stream",
    "stream_text",
    "token_bytes",
    "top_k_filter",
    "top_p_filter",
]


def __getattr__(name: str) -> Any:
    if name == "Chat":
        from minigpt.generate.chat import Chat  # JAX too: the chat decodes with the JAX model

        return Chat
    if name == "JaxDecoder":
        from minigpt.generate.jax_decoder import JaxDecoder  # JAX: only when the JAX decoder is asked for

        return JaxDecoder
    raise AttributeError(f"module 'minigpt.generate' has no attribute {name!r}")
