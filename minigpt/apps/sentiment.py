"""Sentiment control tokens: every review line is prefixed by ``<pos>`` or ``<neg>``.

A language model trained on ``<label> review\\n`` lines learns P(review | label); at sampling time the
prefix steers the review (``minigpt sample RUN --prompt 这款手机 --sentiment neg``). The same model scores a
review zero-shot by Bayes' rule with equal priors:

    label(x) = argmax_ℓ  log P(x | <ℓ>) = argmax_ℓ Σ_t log P(x_t | <ℓ>, x_<t)

The data variant is a normal prepared directory (``minigpt.data``) whose tokenizer has the two extra
special tokens at the end of the vocab, so ``minigpt train`` takes it unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.data import SPLITS, load_lines, load_meta, staged_dir
from minigpt.data.corpus import LABELS
from minigpt.generate import process_logits
from minigpt.params import Params
from minigpt.tokenizers import load_tokenizer

CONTROL_TOKENS: dict[str, str] = {label: f"<{label}>" for label in LABELS}


def control_token(tokenizer: Any, label: str) -> str:
    """The special-token string for ``label``; a ``ValueError`` for an unknown label or a tokenizer without it."""
    if label not in CONTROL_TOKENS:
        raise ValueError(f"unknown sentiment label {label!r}; valid labels are {list(LABELS)}")
    token = CONTROL_TOKENS[label]
    if token not in tokenizer.special_tokens:
        raise ValueError(
            f"the run's tokenizer has no {token} token: it was not trained on sentiment-prefixed data; "
            "prepare it with 'minigpt prepare-sentiment DATA OUT' and train on OUT"
        )
    return token


def control_id(tokenizer: Any, label: str) -> int:
    """The token id of ``label``'s control token."""
    return int(tokenizer.special_tokens[control_token(tokenizer, label)])


def prepare_sentiment(source: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write a copy of the labelled data directory ``source`` with each line prefixed by its control token.

    The tokenizer is ``source``'s plus ``<pos>``, ``<neg>`` (appended: every other id keeps its value);
    line i of split s is ``[<label_i>] + ids(text_i) + ids("\\n")``. Written under a temporary name, then renamed.
    """

    source, out = Path(source), Path(out)
    meta = load_meta(source)
    tok = load_tokenizer(source / "tokenizer")
    ids = dict(zip(LABELS, tok.add_special_tokens([CONTROL_TOKENS[lab] for lab in LABELS]), strict=True))
    dtype = np.uint16 if tok.vocab_size <= 2**16 else np.uint32
    newline = tok.encode("\n")
    meta = {**meta, "vocab_size": tok.vocab_size, "dtype": np.dtype(dtype).name, "control_tokens": CONTROL_TOKENS}
    meta["derived_from"] = str(source.resolve())

    with staged_dir(out) as tmp:
        for split in SPLITS:
            lines = load_lines(source, split)
            stream: list[int] = []
            offsets = [0]
            for text, label in lines:
                stream += [ids[label], *tok.encode(text), *newline]
                offsets.append(len(stream))
            np.save(tmp / f"{split}.npy", np.asarray(stream, dtype=dtype))
            np.save(tmp / f"{split}_line_offsets.npy", np.asarray(offsets, dtype=np.int64))
            shutil.copyfile(source / f"{split}_lines.jsonl", tmp / f"{split}_lines.jsonl")
            meta["splits"][split] = {**meta["splits"][split], "tokens": len(stream)}
        tok.save(tmp / "tokenizer")
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


def conditional_log_likelihood(
    params: Params, cfg: GPTConfig, tokenizer: Any, texts: list[str], label: str, batch_size: int = 64
) -> np.ndarray:
    """log P(text + "\\n" | <label>) per text, (N,), summed over the text's tokens (JAX forward, float32).

    Texts longer than block_size − 1 tokens are cut to their first block_size − 1 tokens (the newline is then
    not scored); empty texts are a ``ValueError``.
    """
    first = control_id(tokenizer, label)
    rows = []
    for text in texts:
        if not text:
            raise ValueError("cannot score an empty review; give at least one character")
        rows.append(([first, *tokenizer.encode(text), *tokenizer.encode("\n")])[: cfg.block_size])
    T = max(len(r) for r in rows)
    x = np.zeros((-(-len(rows) // batch_size) * batch_size, T), np.int32)  # padded to whole batches: one compile
    n = np.zeros(len(x), np.int32)
    for j, r in enumerate(rows):
        x[j, : len(r)] = r
        n[j] = len(r)
    score = _score_fn(cfg)
    out = [
        np.asarray(score(params, x[i : i + batch_size], n[i : i + batch_size])) for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)[: len(rows)].astype(np.float64)


@functools.lru_cache(maxsize=8)
def _score_fn(cfg: GPTConfig):
    """jit(params, x (B, T), n (B,)) → Σ_{t=1}^{n-1} log P(x_t | x_<t), (B,)."""
    import jax  # JAX: minigpt prepare-sentiment runs without it
    import jax.numpy as jnp  # JAX: as above

    from minigpt.model import apply, token_nll  # JAX: as above

    def score(params, x, n):
        keep = jnp.arange(1, x.shape[1])[None, :] < n[:, None]  # (B, T-1): the row's real next tokens
        targets = jnp.where(keep, x[:, 1:], -1)
        return -token_nll(apply(params, x, cfg, fast=True)[:, :-1], targets, ignore_index=-1).sum(axis=1)

    return jax.jit(score)


def zero_shot_predict(params: Params, cfg: GPTConfig, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """1 (pos) where log P(x | <pos>) > log P(x | <neg>), else 0 (neg); int (N,)."""
    pos = conditional_log_likelihood(params, cfg, tokenizer, texts, "pos")
    neg = conditional_log_likelihood(params, cfg, tokenizer, texts, "neg")
    return (pos > neg).astype(np.int64)


def guided_logits(cond: Any, other: Any, guidance: float) -> Any:
    """ℓ = ℓ(· | <label>, x) + γ·(ℓ(· | <label>, x) − ℓ(· | <other label>, x)), (B, V).

    Classifier-free guidance with the opposite control token as the contrast: it boosts exactly what the
    label changes in the next-token distribution; γ = 0 is plain conditional sampling.
    """
    return cond + guidance * (cond - other)


def guided_generate(
    params: Params,
    cfg: GPTConfig,
    tokenizer: Any,
    label: str,
    n: int,
    *,
    guidance: float = 1.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> list[str]:
    """``n`` reviews sampled after ``<label>`` from ``guided_logits`` (then temperature, top-k), each cut at
    its first newline; up to block_size − 1 new tokens. Two rows per review share one KV cache batch: the
    text so far after ``<label>`` and after the other label."""
    import jax  # JAX: minigpt prepare-sentiment runs without it

    if n < 1 or temperature <= 0:
        raise ValueError(f"need n ≥ 1 and temperature > 0, got n={n}, temperature={temperature}")
    other = next(lab for lab in LABELS if lab != label) if label in LABELS else label
    first = np.array([control_id(tokenizer, label)] * n + [control_id(tokenizer, other)] * n, np.int32)
    run = _guided_fn(cfg, n, cfg.block_size - 1, float(guidance), float(temperature), top_k)
    rows = np.asarray(run(params, first[:, None], jax.random.key(seed)))  # (n, block_size − 1)
    newline = tokenizer.encode("\n")[0]
    out = []
    for r in rows.tolist():
        out.append(tokenizer.decode(r[: r.index(newline)] if newline in r else r))
    return out


@functools.lru_cache(maxsize=8)
def _guided_fn(cfg: GPTConfig, n: int, steps: int, guidance: float, temperature: float, top_k: int | None):
    import jax  # JAX: minigpt prepare-sentiment runs without it
    import jax.numpy as jnp  # JAX: as above

    from minigpt.model import KVCache, apply  # JAX: as above

    def run(params, first, key):
        cache = KVCache.init(cfg, 2 * n, steps + 1, params["wte"]["weight"].dtype)
        logits, cache = apply(params, first, cfg, fast=False, cache=cache)

        def body(carry, k):
            logits, cache = carry  # (2n, V): rows < n after <label>, the rest after the other label
            z = process_logits(guided_logits(logits[:n], logits[n:], guidance), temperature=temperature, top_k=top_k)
            tok = jax.random.categorical(k, z, axis=-1).astype(jnp.int32)  # (n,)
            logits, cache = apply(params, jnp.concatenate([tok, tok])[:, None], cfg, fast=False, cache=cache)
            return (logits[:, 0], cache), tok

        _, toks = jax.lax.scan(body, (logits[:, 0], cache), jax.random.split(key, steps))
        return toks.T  # (n, steps)

    return jax.jit(run)
