"""Chat: replies equal brute-force greedy decoding of the whole conversation (the KV cache carries it), the
reply stops at <|end|>, old exchanges are dropped with a notice, errors are one line; `minigpt chat` on stdin."""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.generate import Sampling
from minigpt.generate.chat import Chat
from minigpt.params import map_params
from minigpt.tokenizers import END, CharTokenizer, add_chat_tokens, render_chat

ALPHABET = string.ascii_lowercase + " 物流很快好差"


def tokenizer(chat: bool = True) -> CharTokenizer:
    tok = CharTokenizer(ALPHABET)
    if chat:
        add_chat_tokens(tok)
    return tok


TOK = tokenizer()
CFG = GPTConfig(vocab_size=TOK.vocab_size, block_size=40, n_layer=2, n_head=2, n_embd=16)


def params(seed: int = 0):
    rng = np.random.default_rng(seed)
    return map_params(lambda p: (p + 0.3 * rng.standard_normal(p.shape)).astype(np.float32), ref.init_params(CFG, seed))


ROLE_IDS = [TOK.special_tokens[t] for t in ("<|system|>", "<|user|>", "<|assistant|>")]


def greedy(p, context: list[int], budget: int) -> list[int]:
    """Brute force: one full NumPy forward pass over the whole conversation per new token; no role tokens."""
    out = []
    for _ in range(budget):
        logits = ref.forward(p, np.array([context + out]), CFG)[0, -1]
        logits[ROLE_IDS] = -np.inf
        token = int(logits.argmax())
        out.append(token)
        if token == TOK.special_tokens[END]:
            break
    return out


def test_replies_equal_greedy_decoding_of_the_whole_conversation():
    p, notices = params(1), []
    chat = Chat(CFG, p, TOK, system="be nice", max_new_tokens=4, on_notice=notices.append)
    context = render_chat([{"role": "system", "content": "be nice"}], TOK)
    for text in ("物流很快", "ok"):
        context += render_chat([{"role": "user", "content": text}], TOK, add_generation_prompt=True)
        want = greedy(p, context, 4)
        got = chat.say(text)
        assert got == TOK.decode(t for t in want if t != TOK.special_tokens[END])
        context += want if want[-1] == TOK.special_tokens[END] else [*want, TOK.special_tokens[END]]
        assert chat.context == context
    assert chat.fed == context[: len(chat.fed)]  # the cache held the conversation: only new tokens were fed


def test_oldest_exchanges_are_dropped_with_a_notice_when_the_context_is_full():
    p, notices = params(2), []
    chat = Chat(CFG, p, TOK, system="hi", max_new_tokens=6, on_notice=notices.append)
    for text in ("abc", "def", "ghi", "jkl"):
        chat.say(text)
    assert any("dropped the" in n for n in notices)
    assert len(chat.context) <= CFG.block_size and chat.context[:4] == render_chat(
        [{"role": "system", "content": "hi"}], TOK
    )
    turn = render_chat([{"role": "user", "content": "mno"}], TOK, add_generation_prompt=True)
    system, kept = chat.context[:4], list(chat.exchanges)
    assert system + [t for ex in kept for t in ex] == chat.context
    while len(system) + sum(map(len, kept)) + len(turn) + 6 > CFG.block_size:  # whole exchanges, oldest first
        kept.pop(0)
    want = greedy(p, system + [t for ex in kept for t in ex] + turn, 6)
    assert chat.say("mno") == TOK.decode(t for t in want if t != TOK.special_tokens[END])


def end_model(always: bool):
    """A model whose logits are wte[v]·b for every position (LN_f gain 0): <|end|> always wins, or never does."""
    p = params(3)
    b = np.random.default_rng(0).standard_normal(CFG.n_embd).astype(np.float32)
    p["ln_f"]["weight"][:] = 0.0
    p["ln_f"]["bias"][:] = b
    p["wte"]["weight"][TOK.special_tokens[END]] = (10.0 if always else -10.0) * b
    return p


def test_generation_stops_at_end_and_a_cut_reply_is_announced():
    notices = []
    chat = Chat(CFG, end_model(True), TOK, on_notice=notices.append)
    assert chat.say("abc") == "" and chat.context[-1] == TOK.special_tokens[END] and not notices
    chat = Chat(CFG, end_model(False), TOK, max_new_tokens=3, on_notice=notices.append)
    assert len(chat.say("abc")) == 3 and notices == [
        "[reply cut: the token budget or the context ran out before <|end|>]"
    ]


def test_bans_and_sampling_settings_apply():
    p = params(4)
    plain = Chat(CFG, p, TOK, max_new_tokens=6).say("abc")
    assert plain
    banned = Chat(CFG, p, TOK, max_new_tokens=6, ban=[plain[0]]).say("abc")
    assert plain[0] not in banned
    a, b = (Chat(CFG, p, TOK, max_new_tokens=6, sampling=Sampling(temperature=1.0, seed=s)).say("abc") for s in (0, 0))
    assert a == b  # sampling is reproducible by seed


def test_errors_are_one_line():
    p = params(0)
    with pytest.raises(ValueError, match="never instruction-tuned"):
        Chat(CFG, p, tokenizer(chat=False))
    chat = Chat(CFG, p, TOK)
    with pytest.raises(ValueError, match="empty message"):
        chat.reply("   ")
    with pytest.raises(ValueError, match="shorten it"):
        chat.reply("a" * 50)
    with pytest.raises(ValueError, match="shorten it"):
        Chat(CFG, p, TOK, system="b" * 45)
    with pytest.raises(ValueError, match="must be a minigpt.generate.Sampling"):
        Chat(CFG, p, TOK, sampling=0.5)


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory) -> Path:
    """A tiny run trained for two SFT steps on a slice of the review-reply data."""
    from minigpt.data.replies import prepare
    from minigpt.training.config import TrainConfig
    from minigpt.training.loop import train

    d = tmp_path_factory.mktemp("chat")
    prepare(d / "data", max_review_chars=8)
    for split, n in (("train", 64), ("val", 16)):
        path = d / "data" / f"{split}.jsonl"
        path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    cfg = GPTConfig(vocab_size=4622, block_size=64, n_layer=1, n_head=2, n_embd=16)
    t = TrainConfig(data=str(d / "data"), out=str(d / "run"), task="sft", max_steps=2, batch_size=4, progress=False)
    train(cfg, t.replace(eval_batches=1, warmup_steps=0), log=lambda *_: None)
    return d / "run"


def minigpt(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "minigpt.cli", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_chat_command_on_stdin_and_once(chat_run, tmp_path):
    r = minigpt("chat", str(chat_run), "--max-new-tokens", "5", stdin="物流很快\n\n/reset\n屏幕很好\n/exit\n")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2  # two replies, one line each
    assert "minigpt chat: empty message" in r.stderr  # the empty line: one line, and the chat goes on
    once = minigpt("chat", str(chat_run), "--once", "物流很快", "--max-new-tokens", "5")
    assert once.returncode == 0 and once.stdout == r.stdout.splitlines(keepends=True)[0]  # greedy: the same reply
    plain = tmp_path / "plain"
    shutil.copytree(chat_run, plain)
    shutil.rmtree(plain / "tokenizer")
    CharTokenizer("物流").save(plain / "tokenizer")  # a tokenizer without the chat tokens: never instruction-tuned
    bad = minigpt("chat", str(plain), "--once", "物流")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "never instruction-tuned" in bad.stderr
    long = minigpt("chat", str(chat_run), "--once", "很" * 80)
    assert long.returncode == 2 and "shorten it" in long.stderr
