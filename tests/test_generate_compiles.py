"""How many XLA programs decoding compiles: a regression fence around ``minigpt.generate.decode``'s bucketing.

Counted with JAX's monitoring events (one ``backend_compile_duration`` per program handed to XLA, whether or not
the persistent cache then supplies it). Each test uses a config no other test uses, so that JAX's in-memory
caches of earlier tests cannot hide a compilation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import monitoring

from minigpt import reference as ref
from minigpt.config import GPTConfig
from minigpt.generate import generate, stream
from minigpt.generate.jax_decoder import bucket

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compiled() -> Iterator[list[str]]:
    """Collects the names of the programs compiled inside the block."""
    names: list[str] = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            names.append(str(kwargs.get("fun_name")))

    monitoring.register_event_duration_secs_listener(listen)
    try:
        yield names
    finally:
        monitoring.unregister_event_duration_listener(listen)


def _model(vocab_size: int) -> tuple[GPTConfig, dict]:
    cfg = GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=8)
    return cfg, ref.init_params(cfg, seed=0)


def test_greedy_generate_compiles_one_program_and_reuses_it_across_prompt_lengths():
    cfg, params = _model(vocab_size=41)
    with compiled() as first:
        generate(params, [[1, 2, 3]], cfg, max_new_tokens=5, temperature=0, backend="jax")
    assert first == ["jit(_generate_jax)"]  # was 14: a "stage" per parameter shape, the seed's key, the loop
    with compiled() as again:
        generate(params, [[4, 5, 6, 7, 8, 9]], cfg, max_new_tokens=2, temperature=0, backend="jax")
        generate(params, [[1], [2, 3]], cfg, max_new_tokens=4, temperature=0, backend="jax", seed=5)
    assert again == ["jit(_generate_jax)"]  # a batch of 2 is a new program; prompt lengths 1–8 and seeds are not


def test_streaming_compiles_prefill_pick_and_step_once():
    cfg, params = _model(vocab_size=43)
    with compiled() as first:
        list(stream(params, [[1, 2, 3]], cfg, max_new_tokens=5, temperature=0, backend="jax"))
    assert sorted(first) == ["jit(_pick_at_jax)", "jit(_prefill_jax)", "jit(_step_jax)"]  # was 17
    with compiled() as again:
        list(stream(params, [[3, 1, 4, 1, 5]], cfg, max_new_tokens=3, temperature=0, backend="jax", seed=9))
    assert again == []


def test_bucketed_shapes_give_the_same_tokens_as_no_padding():
    """Left padding up to the bucket changes no token: greedy decoding equals brute force over the bare prompt."""
    cfg, params = _model(vocab_size=47)
    for prompt in ([5], [1, 2, 3], list(range(9))):
        ids = list(prompt)
        for _ in range(4):
            ids.append(int(np.argmax(ref.forward(params, np.array([ids]), cfg)[0, -1])))
        want = ids[len(prompt) :]
        assert generate(params, [prompt], cfg, max_new_tokens=4, temperature=0, backend="jax") == [want]
        steps = list(stream(params, [prompt], cfg, max_new_tokens=4, temperature=0, backend="jax"))
        assert [int(s[0]) for s in steps] == want


@settings(max_examples=200)
@given(n=st.integers(1, 3000), room=st.integers(0, 3000))
def test_bucket_is_the_next_power_of_two_within_the_cap(n, room):
    cap = n + room
    power = 8
    while power < n:
        power *= 2
    assert bucket(n, cap) == min(power, cap)
