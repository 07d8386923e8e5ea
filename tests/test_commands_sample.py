"""``minigpt sample``'s defaults: temperature 0.8 with top-k 40, and stopping at the end of a line for a run trained
on a one-document-per-line corpus (``--multiline`` to go on; ``--max-new-tokens`` bounds both).

Expected outputs come from brute-force decoding with the NumPy reference (the whole context through
``reference.forward`` at every step).
"""

from __future__ import annotations

import io
import json
import string
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import reference as ref
from minigpt.commands.sample import DEFAULT_TOP_K, build_parser, newline_tokens, one_document_per_line, run_sample
from minigpt.config import GPTConfig

CFG = GPTConfig(vocab_size=64, block_size=32, n_layer=1, n_head=2, n_embd=16)


class LetterTokenizer:
    """One character per id: ``chars[i]`` is token i."""

    def __init__(self, chars: str):
        self.chars = chars

    def encode(self, text: str) -> list[int]:
        return [self.chars.index(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def _params(seed: int) -> dict:
    """Random weights far from GPT-2's small init: sharp logits, a few tokens dominate, as in a trained model."""
    rng = np.random.default_rng(seed)

    def noisy(tree):
        if isinstance(tree, dict):
            return {k: noisy(v) for k, v in tree.items()}
        if isinstance(tree, list):  # the blocks
            return [noisy(v) for v in tree]
        return (tree + rng.normal(0, 0.5, tree.shape)).astype(np.float32)

    return noisy(ref.init_params(CFG, seed=seed))


def _greedy(params: dict, ids: list[int], n: int) -> list[int]:
    ids = list(ids)
    for _ in range(n):
        ids.append(int(ref.forward(params, np.array([ids]), CFG)[0, -1].argmax()))
    return ids[-n:]


def _run_dir(tmp_path: Path, *, line_corpus: bool) -> Path:
    """A run directory whose config.json names a data directory, with line offsets if ``line_corpus``."""
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    run.mkdir()
    if line_corpus:
        np.save(data / "train_line_offsets.npy", np.array([0, 3, 7]))
    (run / "config.json").write_text(json.dumps({"model": {}, "train": {"data": str(data)}}), encoding="utf-8")
    return run


def _sample(run: Path | str, params: dict, tok: LetterTokenizer, *argv: str) -> str:
    args = build_parser().parse_args([str(run), "--backend", "numpy", *argv])
    out = io.StringIO()
    assert run_sample(CFG, params, tok, args, out=out) == 0
    return out.getvalue()


def test_defaults_are_temperature_0_8_and_top_k_40():
    args = build_parser().parse_args(["RUN", "--prompt", "x"])
    assert (args.strategy, args.temperature, args.top_k, args.top_p) == ("sample", 0.8, 40, 1.0)
    assert not args.multiline


def test_by_default_as_many_new_tokens_as_fit_in_the_context():
    """block_size 32: a 3-token prompt gets 29 new tokens (the default 100 would not fit), unless told fewer."""
    tok, params = LetterTokenizer(string.printable[:64]), _params(0)
    greedy = ("--prompt", "abc", "--strategy", "greedy")
    assert _sample("RUN", params, tok, *greedy) == "abc" + tok.decode(_greedy(params, tok.encode("abc"), 29)) + "\n"
    assert (
        _sample("RUN", params, tok, *greedy, "--max-new-tokens", "4")
        == "abc" + tok.decode(_greedy(params, tok.encode("abc"), 4)) + "\n"
    )


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16))
def test_default_sampling_draws_only_from_the_40_likeliest_tokens(seed):
    """Each token drawn with the defaults is among the top 40 of the reference's logits for its context, and the
    defaults are exactly --temperature 0.8 --top-k 40."""
    tok, params = LetterTokenizer(string.printable[:64]), _params(seed % 7)
    text = _sample("RUN", params, tok, "--prompt", "ab", "--max-new-tokens", "12", "--seed", str(seed))
    ids = tok.encode(text.removesuffix("\n"))
    for t in range(2, len(ids)):
        logits = ref.forward(params, np.array([ids[:t]]), CFG)[0, -1]
        assert (logits > logits[ids[t]]).sum() < DEFAULT_TOP_K
    explicit = _sample("RUN", params, tok, "--prompt", "ab", "--max-new-tokens", "12", "--seed", str(seed),
                       "--temperature", "0.8", "--top-k", "40")  # fmt: skip
    assert text == explicit


def test_top_k_0_keeps_every_token():
    """At temperature 1 without top-k, a flat model draws outside any top 40 within 40 tokens (0.6 ** 40 ≈ 1e-9)."""
    tok, params = LetterTokenizer(string.printable[:64]), ref.init_params(CFG, seed=0)
    text = _sample("RUN", params, tok, "--prompt", "a", "--max-new-tokens", "30", "--temperature", "1", "--top-k", "0")
    ids = tok.encode(text.removesuffix("\n"))
    assert len(ids) == 31  # ran to the end
    outside = []
    for t in range(1, len(ids)):
        logits = ref.forward(params, np.array([ids[:t]]), CFG)[0, -1]
        outside.append((logits > logits[ids[t]]).sum() >= DEFAULT_TOP_K)
    assert any(outside)


def _line_setup(seed: int) -> tuple[dict, LetterTokenizer, list[int]]:
    """Params, a tokenizer whose newline is the 3rd greedy token after "ab", and the 8 greedy tokens."""
    params = _params(seed)
    chars = list(string.ascii_letters + string.digits + "!?")  # 64 characters, no newline yet
    prompt = [chars.index("a"), chars.index("b")]
    cont = _greedy(params, prompt, 8)
    newline = cont[2]
    assert newline not in cont[:2] + prompt, "choose another SEED: the newline must be a token not seen before"
    chars[newline] = "\n"
    return params, LetterTokenizer("".join(chars)), cont


SEED = 4  # greedy after "ab" gives three distinct tokens first, none of them "a" or "b"


def test_a_line_corpus_run_stops_at_the_end_of_the_line(tmp_path):
    params, tok, cont = _line_setup(SEED)
    run = _run_dir(tmp_path, line_corpus=True)
    assert one_document_per_line(str(run))
    greedy = ("--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "8")
    assert _sample(run, params, tok, *greedy) == "ab" + tok.decode(cont[:2]) + "\n"
    assert _sample(run, params, tok, *greedy, "--multiline") == "ab" + tok.decode(cont) + "\n"
    bounded = ("--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "2")
    assert _sample(run, params, tok, *bounded) == "ab" + tok.decode(cont[:2]) + "\n"
    beam = _sample(
        run, params, tok, "--prompt", "ab", "--strategy", "beam", "--num-beams", "1", "--max-new-tokens", "8"
    )
    assert beam.endswith("ab" + tok.decode(cont[:2]) + "\n")  # one beam is greedy; it ends at the newline


def test_free_text_runs_and_runs_without_their_data_go_past_the_newline(tmp_path):
    params, tok, cont = _line_setup(SEED)
    greedy = ("--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "8")
    free = _run_dir(tmp_path, line_corpus=False)
    assert not one_document_per_line(str(free))
    assert _sample(free, params, tok, *greedy) == "ab" + tok.decode(cont) + "\n"
    assert not one_document_per_line(str(tmp_path / "missing"))


def test_newline_tokens_are_every_token_holding_a_line_break():
    class Pieces:
        pieces = ["a", "\n", "b\n", "c", "\n\n"]

        def decode(self, ids):
            return "".join(self.pieces[i] for i in ids)

    assert newline_tokens(Pieces(), 5) == [1, 2, 4]
