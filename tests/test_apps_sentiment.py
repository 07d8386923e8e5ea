"""Sentiment control tokens: the prefixed data variant, conditional log-likelihoods, ``sample --sentiment``."""

from __future__ import annotations

import io

import numpy as np
import pytest

from minigpt.apps.sentiment import (
    CONTROL_TOKENS,
    conditional_log_likelihood,
    control_id,
    control_token,
    guided_generate,
    guided_logits,
    prepare_sentiment,
    zero_shot_predict,
)
from minigpt.config import GPTConfig
from minigpt.data import load_line_offsets, load_lines, load_meta, load_split, prepare
from minigpt.reference import forward, init_params
from minigpt.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    prepare("reviews", root / "plain")
    prepare_sentiment(root / "plain", root / "ctrl")
    return root / "plain", root / "ctrl"


@pytest.fixture(scope="module")
def tiny(dirs):
    tok = load_tokenizer(dirs[1] / "tokenizer")
    cfg = GPTConfig.preset("tiny", vocab_size=tok.vocab_size)
    return cfg, init_params(cfg, seed=3, dtype=np.float32), tok


def test_prefixed_stream_is_the_plain_stream_with_one_control_token_per_line(dirs):
    plain, ctrl = dirs
    old, new = load_tokenizer(plain / "tokenizer"), load_tokenizer(ctrl / "tokenizer")
    assert new.vocab_size == old.vocab_size + 2 == load_meta(ctrl)["vocab_size"]
    ids = {lab: new.special_tokens[tok] for lab, tok in CONTROL_TOKENS.items()}
    assert sorted(ids.values()) == [old.vocab_size, old.vocab_size + 1]  # appended: no old id moved
    for split in ("train", "val"):
        a, b = load_split(plain, split), load_split(ctrl, split)
        oa, ob = load_line_offsets(plain, split), load_line_offsets(ctrl, split)
        lines = load_lines(ctrl, split)
        assert lines == load_lines(plain, split) and len(b) == len(a) + len(lines)
        for i in (0, 1, len(lines) // 2, len(lines) - 1):
            assert b[ob[i]] == ids[lines[i][1]]
            np.testing.assert_array_equal(b[ob[i] + 1 : ob[i + 1]], a[oa[i] : oa[i + 1]])
        assert new.decode(b[ob[0] + 1 : ob[1] - 1].tolist()) == lines[0][0]


def test_unknown_label_and_untrained_tokenizer_are_clear_errors(dirs):
    tok = load_tokenizer(dirs[1] / "tokenizer")
    with pytest.raises(ValueError, match=r"unknown sentiment label 'neutral'.*\['pos', 'neg'\]"):
        control_token(tok, "neutral")
    with pytest.raises(ValueError, match="no <neg> token"):
        control_token(load_tokenizer(dirs[0] / "tokenizer"), "neg")
    assert tok.decode([control_id(tok, "pos")]) == "<pos>"


def test_conditional_log_likelihood_matches_the_numpy_reference(tiny):
    cfg, params, tok = tiny
    texts = [
        "这款手机很好",
        "差",
        "物流太慢了，不推荐购买这家店的东西，真的很失望",
    ]
    # the last one is longer than block_size and gets cut
    got = conditional_log_likelihood(params, cfg, tok, texts, "neg", batch_size=2)
    for text, g in zip(texts, got, strict=True):
        ids = ([control_id(tok, "neg"), *tok.encode(text + "\n")])[: cfg.block_size]
        logits = forward(params, np.array([ids]), cfg)[0].astype(np.float64)  # (T, V)
        logp = (
            logits
            - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
            - logits.max(1)[:, None]
        )
        want = sum(logp[t - 1, ids[t]] for t in range(1, len(ids)))
        assert g == pytest.approx(want, rel=1e-4, abs=1e-3)
    pos = conditional_log_likelihood(params, cfg, tok, texts, "pos")
    np.testing.assert_array_equal(zero_shot_predict(params, cfg, tok, texts), (pos > got).astype(int))
    with pytest.raises(ValueError, match="empty review"):
        conditional_log_likelihood(params, cfg, tok, ["好", ""], "pos")


def test_sample_sentiment_prefixes_the_control_token(tiny):
    from minigpt.commands.sample import build_parser, run_sample

    cfg, params, tok = tiny
    args = build_parser().parse_args(["RUN", "--prompt", "这款手机", "--sentiment", "neg", "--strategy", "greedy"])
    args.max_new_tokens = 5
    out = io.StringIO()
    assert run_sample(cfg, params, tok, args, out=out) == 0
    ids = [control_id(tok, "neg"), *tok.encode("这款手机")]
    for _ in range(5):  # brute-force greedy decoding with the NumPy reference
        ids.append(int(forward(params, np.array([ids]), cfg)[0, -1].argmax()))
    assert out.getvalue() == "这款手机" + tok.decode(ids[5:]) + "\n"
    args.sentiment = "angry"
    with pytest.raises(ValueError, match="valid labels are"):
        run_sample(cfg, params, tok, args, out=io.StringIO())


def test_cli_prepares_and_reports_bad_directories(dirs, tmp_path, capsys):
    from minigpt.cli import main

    assert main(["prepare-sentiment", str(dirs[0]), str(tmp_path / "out")]) == 0
    assert load_meta(tmp_path / "out")["control_tokens"] == CONTROL_TOKENS
    assert main(["prepare-sentiment", str(tmp_path / "nowhere"), str(tmp_path / "o2")]) == 2
    assert "not a prepared data directory" in capsys.readouterr().err and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_guided_generation_follows_the_guided_argmax_of_the_reference(tiny, guidance):
    """top_k=1 makes sampling the argmax of ℓ_label + γ(ℓ_label − ℓ_other), recomputed here from scratch with
    the NumPy reference on the whole prefix at every step (no cache)."""
    cfg, params, tok = tiny
    newline = tok.encode("\n")[0]
    for label, other in (("pos", "neg"), ("neg", "pos")):
        got = guided_generate(params, cfg, tok, label, 2, guidance=guidance, temperature=1.0, top_k=1, seed=0)
        ids: list[int] = []
        for _ in range(cfg.block_size - 1):
            cond = forward(params, np.array([[control_id(tok, label), *ids]]), cfg)[0, -1].astype(np.float64)
            alt = forward(params, np.array([[control_id(tok, other), *ids]]), cfg)[0, -1].astype(np.float64)
            ids.append(int(np.argmax(cond + guidance * (cond - alt))))
        want = tok.decode(ids[: ids.index(newline)] if newline in ids else ids)
        assert got == [want, want]
    z = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(guided_logits(z, z - 1, 2.0), z + 2.0)
    with pytest.raises(ValueError, match="temperature > 0"):
        guided_generate(params, cfg, tok, "pos", 1, temperature=0.0)
