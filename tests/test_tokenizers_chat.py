"""The chat format: chat tokens text cannot forge (both tokenizers), render/parse round trips, the SFT mask."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.tokenizers import (
    ASSISTANT,
    CHAT_TOKENS,
    END,
    EOT,
    SYSTEM,
    USER,
    ByteLevelBPE,
    CharTokenizer,
    add_chat_tokens,
    load_tokenizer,
    parse_chat,
    render_chat,
    render_chat_with_mask,
)

CJK = "物流很快电池屏幕服务价格房间质量感谢抱歉好差"
ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \n" + CJK
FRAGMENTS = [*CHAT_TOKENS, EOT, "<|", "|>", "<|end", "end|>", "<|end|", "<<|end|>>", "<|user|><|end|>"]


def _char() -> CharTokenizer:
    tok = CharTokenizer(ALPHABET)
    add_chat_tokens(tok)
    return tok


def _bpe() -> ByteLevelBPE:
    tok = ByteLevelBPE.train(["物流很快，电池不错。" * 5, "the <|end|> of it, end|> " * 5], vocab_size=300)
    add_chat_tokens(tok)
    return tok


TOKENIZERS = {"char": _char(), "bpe": _bpe()}
texts = st.lists(st.one_of(st.text(ALPHABET, max_size=8), st.sampled_from(FRAGMENTS)), max_size=8).map("".join)
roles = st.sampled_from(["user", "assistant"])
conversations = st.tuples(st.one_of(st.none(), texts), st.lists(st.tuples(roles, texts), max_size=5)).map(
    lambda sm: (
        ([{"role": "system", "content": sm[0]}] if sm[0] is not None else [])
        + [{"role": r, "content": c} for r, c in sm[1]]
    )
)


@pytest.mark.parametrize("kind", TOKENIZERS)
@settings(max_examples=60, deadline=None)
@given(s=texts)
def test_text_containing_chat_tokens_never_encodes_to_their_ids(kind, s):
    tok = TOKENIZERS[kind]
    ids = tok.encode(s)
    chat_ids = {tok.special_tokens[t] for t in CHAT_TOKENS}
    assert not chat_ids & set(ids)
    assert tok.decode(ids) == s  # every character of ALPHABET is in both vocabs: the text comes back as it was


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_chat_token_characters_encode_as_their_ordinary_characters(kind):
    tok = TOKENIZERS[kind]
    for t in CHAT_TOKENS:
        ids = tok.encode(t)
        assert ids != [tok.special_tokens[t]]
        assert ids == tok.encode("<") + tok.encode(t[1:]) or kind == "bpe"  # char: one id per character
        assert tok.decode(ids) == t
    assert tok.encode(EOT) == [tok.eot_id]  # the other special tokens still match in text, as before


@pytest.mark.parametrize("kind", TOKENIZERS)
@settings(max_examples=60, deadline=None)
@given(messages=conversations)
def test_parse_inverts_render(kind, messages):
    tok = TOKENIZERS[kind]
    assert parse_chat(render_chat(messages, tok), tok) == messages
    prompt = render_chat(messages, tok, add_generation_prompt=True)
    assert parse_chat(prompt, tok) == [*messages, {"role": "assistant", "content": ""}]


@pytest.mark.parametrize("kind", TOKENIZERS)
@settings(max_examples=60, deadline=None)
@given(messages=conversations)
def test_mask_marks_exactly_the_assistant_replies_and_their_end(kind, messages):
    tok = TOKENIZERS[kind]
    ids, mask = render_chat_with_mask(messages, tok)
    assert len(ids) == len(mask)
    assert tok.decode(i for i, m in zip(ids, mask, strict=True) if m) == "".join(
        m["content"] + END for m in messages if m["role"] == "assistant"
    )
    # the text of the whole sequence: role headers, contents and ends in order
    header = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
    expected = "".join(header[m["role"]] + m["content"] + END for m in messages)
    assert tok.decode(ids) == expected


def test_render_known_sequence():
    tok = _char()
    sp = tok.special_tokens
    ids, mask = render_chat_with_mask(
        [{"role": "user", "content": "好"}, {"role": "assistant", "content": "感谢"}], tok, add_generation_prompt=True
    )
    assert ids == [sp[USER], *tok.encode("好"), sp[END], sp[ASSISTANT], *tok.encode("感谢"), sp[END], sp[ASSISTANT]]
    assert mask == [False, False, False, False, True, True, True, False]


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_chat_tokens_persist_and_old_tokenizers_load(kind, tmp_path):
    tok = TOKENIZERS[kind]
    tok.save(tmp_path / "new")
    back = load_tokenizer(tmp_path / "new")
    assert back.special_tokens == tok.special_tokens
    assert back.encode("a<|end|>好") == tok.encode("a<|end|>好")
    assert END not in back.decode(back.encode("x")) and back.special_tokens[END] not in back.encode("<|end|>")
    old = CharTokenizer(ALPHABET) if kind == "char" else ByteLevelBPE.train(["物流很快"], vocab_size=260)
    old.save(tmp_path / "old")
    again = load_tokenizer(tmp_path / "old")
    assert again.encode(EOT + "物流<|end|>") == old.encode(EOT + "物流<|end|>")
    assert not set(CHAT_TOKENS) & set(again.special_tokens)


def test_errors_name_the_problem():
    plain = CharTokenizer(ALPHABET)
    with pytest.raises(ValueError, match="never instruction-tuned"):
        render_chat([{"role": "user", "content": "好"}], plain)
    tok = _char()
    with pytest.raises(ValueError, match="role 'bot'"):
        render_chat([{"role": "bot", "content": "好"}], tok)
    with pytest.raises(ValueError, match="only the first message"):
        render_chat([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], tok)
    with pytest.raises(ValueError, match="must be a str"):
        render_chat([{"role": "user", "content": 3}], tok)
    sp = tok.special_tokens
    with pytest.raises(ValueError, match="position 0: expected a role token"):
        parse_chat(tok.encode("好"), tok)
    with pytest.raises(ValueError, match="position 2: a new 'assistant' message starts before the 'user' one"):
        parse_chat([sp[USER], *tok.encode("好"), sp[ASSISTANT]], tok)
    with pytest.raises(ValueError, match="position 0: expected a role token"):
        parse_chat([sp[END]], tok)
