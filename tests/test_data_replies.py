"""Review replies: the aspect lexicon, the templates, and `minigpt prepare review-replies` (split, pairs, vocab)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.commands.prepare_replies import main
from minigpt.data import corpus
from minigpt.data import reply_templates as replies
from minigpt.data.prepared import build_tokenizer
from minigpt.data.replies import encode_examples, load_records, prepare
from minigpt.data.sources import read_source
from minigpt.tokenizers import CHAT_TOKENS, load_tokenizer

WORDS = [w for words in replies.ASPECT_LEXICON.values() for w in words]
reviews = st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(list("很好差的了我们这个"))), max_size=12).map(
    "".join
)
THANKS, SORRY = ("感谢", "谢谢"), ("抱歉", "对不起")  # written out here: the judge's words, not the module's tables


@settings(max_examples=100, deadline=None)
@given(review=reviews, label=st.sampled_from(["pos", "neg"]))
def test_reply_thanks_or_apologises_by_label_and_names_the_aspects(review, label):
    aspects = replies.find_aspects(review)
    assert aspects == [a for a, ws in replies.ASPECT_LEXICON.items() if any(review.find(w) >= 0 for w in ws)]
    reply = replies.compose_reply(review, label, aspects)
    assert any(w in reply for w in (THANKS if label == "pos" else SORRY))
    assert not any(w in reply for w in (SORRY if label == "pos" else THANKS))
    assert all(a in reply for a in aspects[: replies.MAX_ASPECTS])
    assert reply == replies.compose_reply(review, label, aspects)  # deterministic
    bad, kind = replies.rejected_reply(review, label, aspects)
    assert bad != reply
    if kind == "wrong_sentiment":
        assert any(w in bad for w in (SORRY if label == "pos" else THANKS))
    else:
        assert aspects and not any(a in bad for a in aspects) and bad[:3] == reply[:3]


def test_join_aspects_and_bad_label():
    assert [replies.join_aspects(a) for a in (["物流"], ["物流", "电池"], ["物流", "电池", "屏幕", "服务"])] == [
        "物流",
        "物流和电池",
        "物流、电池和屏幕",
    ]
    with pytest.raises(ValueError, match="label must be one of"):
        replies.compose_reply("x", "neutral", [])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("rr") / "data"
    assert main(["--out", str(out), "--max-review-chars", "40"]) == 0
    return out


def test_split_is_the_review_corpus_split_and_disjoint(prepared):
    train, val = load_records(prepared, "train"), load_records(prepared, "val")
    assert {r["review"] for r in train}.isdisjoint({r["review"] for r in val})
    assert all(corpus.line_split(r["review"], 0.1) == "val" for r in val)
    assert all(corpus.line_split(r["review"], 0.1) == "train" for r in train)
    src = read_source("reviews", 0.1)  # what `minigpt prepare reviews` puts in val, so pretraining never saw these
    assert {r["review"] for r in val} == {t for t, _ in src.lines["val"]}
    meta = json.loads((prepared / "meta.json").read_text(encoding="utf-8"))
    assert meta["splits"]["val"]["examples"] == len(val) and meta["task"] == "chat"


def test_records_are_consistent(prepared):
    for r in load_records(prepared, "val"):
        assert r["shown"] == r["review"][:40]
        assert r["aspects"] == replies.find_aspects(r["shown"])
        assert r["chosen"] == replies.compose_reply(r["shown"], r["label"], r["aspects"])
        assert r["rejected"] != r["chosen"]


def test_tokenizer_extends_the_reviews_vocab_and_encodes_every_example(prepared):
    tok = load_tokenizer(prepared / "tokenizer")
    base = build_tokenizer("char", None, [read_source("reviews", 0.1)])
    assert tok.vocab_size == base.vocab_size + len(CHAT_TOKENS)
    assert all(tok.id_to_token(i) == base.id_to_token(i) for i in range(base.vocab_size))
    records = load_records(prepared, "val")[:200]
    for (ids, mask), r in zip(encode_examples(records, tok), records, strict=True):
        assert tok.decode(i for i, m in zip(ids, mask, strict=True) if m) == r["chosen"] + "<|end|>"
        assert tok.unk_id not in ids


def test_prepare_is_deterministic(prepared, tmp_path):
    prepare(tmp_path / "again", max_review_chars=40)
    for name in ("train.jsonl", "val.jsonl", "tokenizer/vocab.json"):
        assert (tmp_path / "again" / name).read_bytes() == (prepared / name).read_bytes()


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--max-review-chars", "0"]) == 2
    assert "max_review_chars must be ≥ 1" in capsys.readouterr().err
