"""Decoding: KV cache, greedy/temperature/top-k/top-p sampling, repetition penalty, beam search,
banned phrases and streaming, for the NumPy reference and the JAX model.

    from minigpt.generate import generate, beam_search, generate_text, stream_text
    generate(model, [[1, 2, 3], [4, 5]], max_new_tokens=20, temperature=0.8, top_k=40, seed=0)

Modules: ``kv_cache`` (the NumPy cached forward pass; the JAX model has its own ``minigpt.model.KVCache``),
``processors`` (logits filters), ``decode`` (the loops), ``beam`` (beam search), ``bans`` (banned phrases),
``text`` (tokenizer-level helpers and streaming text), ``chat`` (multi-turn chat on one KV cache).
"""

from minigpt.generate.bans import BannedPhrases, token_bytes
from minigpt.generate.beam import Hypothesis, beam_search
from minigpt.generate.chat import Chat
from minigpt.generate.decode import JaxDecoder, ReferenceDecoder, generate, make_decoder, prepare_prompts, stream
from minigpt.generate.kv_cache import ReferenceKVCache, forward_cached_numpy
from minigpt.generate.processors import (
    apply_repetition_penalty,
    apply_temperature,
    check_sampling,
    process_logits,
    top_k_filter,
    top_p_filter,
)
from minigpt.generate.text import TextStream, beam_search_text, generate_text, stream_text

__all__ = [
    "Chat",
    "BannedPhrases",
    "Hypothesis",
    "JaxDecoder",
    "ReferenceDecoder",
    "ReferenceKVCache",
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
