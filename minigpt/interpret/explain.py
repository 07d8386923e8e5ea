"""What ``minigpt explain`` computes for one prompt: the logit lens, the logit attribution of the next token and,
given a corrupted prompt, an activation-patching sweep; figures (PNG) and the numbers (``explain.json``).

For the review model: what in 这款手机的性能非常好， pushes the next character toward praise? The target defaults to
the model's own next-token prediction and, given a corrupted prompt (e.g. 这款手机的性能非常差，), the contrast to
the corrupted prompt's prediction (or, when both predict the same token, to the token the corruption favours most:
``default_contrast``), so the attribution and the patching both measure logit[target] − logit[contrast] at the last
position.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from minigpt.atomic import write_text
from minigpt.config import GPTConfig
from minigpt.interpret.attribution import attribute
from minigpt.interpret.capture import capture
from minigpt.interpret.lens import logit_lens
from minigpt.interpret.patching import Patcher
from minigpt.params import Params
from minigpt.viz import interpret as figures
from minigpt.viz.attention import token_labels

FILES = {"lens": "logit_lens.png", "attribution": "attribution.png", "patching": "patching.png", "json": "explain.json"}


def token_id(tokenizer: Any, text: str, what: str) -> int:
    """The one token id of ``text``; a clear error when the tokenizer splits it into several (or none)."""
    ids = tokenizer.encode(text)
    if len(ids) != 1:
        raise ValueError(f"{what} {text!r} is {len(ids)} tokens {ids} for this run's tokenizer; give exactly one token")
    return int(ids[0])


def encode_prompt(tokenizer: Any, text: str, cfg: GPTConfig, what: str = "--prompt") -> np.ndarray:
    ids = tokenizer.encode(text)
    if not ids:
        raise ValueError(f"{what} {text!r} encodes to no tokens; give some text")
    if len(ids) > cfg.block_size:
        raise ValueError(f"{what} is {len(ids)} tokens, more than the model's context of {cfg.block_size}; shorten it")
    return np.asarray([ids])  # (1, T)


def default_contrast(clean: np.ndarray, corrupted: np.ndarray, target: int) -> int:
    """The corrupted prompt's next-token prediction when it is not the target; otherwise the token whose
    log-probability the corruption raises most, log p_corrupted − log p_clean (both logits (V,))."""
    top = int(np.argmax(corrupted))
    if top != target:
        return top
    with np.errstate(invalid="ignore"):  # a token ruled out in both (logit −inf) gains nothing: NaN → −inf below
        gain = log_softmax(corrupted) - log_softmax(clean)  # (V,)
    gain = np.where(np.isfinite(gain), gain, -np.inf)
    gain[target] = -np.inf
    return int(np.argmax(gain))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over the last axis: x − max − log Σ exp(x − max) (−inf stays −inf, without a warning)."""
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(x: np.ndarray) -> np.ndarray:
    """softmax over the last axis (the vocabulary)."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def explain(
    cfg: GPTConfig,
    params: Params,
    tokenizer: Any,
    prompt: str,
    out: str | Path,
    *,
    target: str | None = None,
    contrast: str | None = None,
    corrupt: str | None = None,
    backend: str = "numpy",
) -> dict[str, Any]:
    """Write the figures and ``explain.json`` for ``prompt`` into ``out``; returns the JSON's content."""
    idx = encode_prompt(tokenizer, prompt, cfg)
    bad = idx if corrupt is None else encode_prompt(tokenizer, corrupt, cfg, "--corrupt")
    if bad.shape != idx.shape:
        raise ValueError(
            f"--corrupt is {bad.shape[1]} tokens and --prompt {idx.shape[1]}; they must be as long so that positions "
            "line up (change words for words of the same length)"
        )
    acts = capture(params, idx, cfg, backend=backend)
    logits = acts["logits"][0, -1]  # (V,)
    t_id = int(np.argmax(logits)) if target is None else token_id(tokenizer, target, "--target")
    c_id = None if contrast is None else token_id(tokenizer, contrast, "--contrast")
    if c_id is None and corrupt is not None:
        c_id = default_contrast(logits, capture(params, bad, cfg, backend=backend)["logits"][0, -1], t_id)
    labels = token_labels(tokenizer, idx[0])
    bad_labels = token_labels(tokenizer, bad[0])
    both = [a if a == b else f"{a}|{b}" for a, b in zip(labels, bad_labels, strict=True)]  # clean|corrupted
    name = lambda i: token_labels(tokenizer, [i])[0]  # noqa: E731
    # an ASCII minus: the shipped CJK font has no U+2212
    metric = f"logit[{name(t_id)}]" + ("" if c_id is None else f" - logit[{name(c_id)}]")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    probs = softmax(logit_lens(params, idx, cfg, backend=backend)[:, 0])  # (L + 1, T, V)
    top = probs.argmax(-1)  # (L + 1, T)
    top_text = [[name(int(i)) for i in row] for row in top]
    fig = figures.lens_figure(
        np.take_along_axis(probs, top[..., None], -1)[..., 0], top_text, labels, title=f"logit lens: {prompt}"
    )
    figures.save(fig, out / FILES["lens"])

    att = attribute(acts, params, cfg, t_id, c_id)
    shares = att.values[:, 0, -1]  # (P,): at the last position
    figures.save(
        figures.attribution_figure(att.names, shares, title=f"{metric} after {prompt}"), out / FILES["attribution"]
    )
    report: dict[str, Any] = {
        "prompt": prompt,
        "tokens": labels,
        "target": {"id": t_id, "text": name(t_id), "probability": float(softmax(logits)[t_id])},
        "contrast": None
        if c_id is None
        else {"id": c_id, "text": name(c_id), "probability": float(softmax(logits)[c_id])},
        "metric": metric,
        "logit_lens": {
            "rows": ["embed"] + [f"block {i}" for i in range(cfg.n_layer)],
            "top_tokens": top_text,
            "top_probability": np.take_along_axis(probs, top[..., None], -1)[..., 0].round(6).tolist(),
            "target_probability": probs[..., t_id].round(6).tolist(),
        },
        "attribution": {
            "position": idx.shape[1] - 1,
            "total": float(att.total[0, -1]),
            "parts": {n: float(v) for n, v in zip(att.names, shares, strict=True)},
        },
        "patching": None,
        "files": {k: v for k, v in FILES.items() if k != "patching" or corrupt is not None},
    }
    if corrupt is not None:
        patcher = Patcher(params, idx, bad, cfg, t_id, c_id, backend=backend)
        restored = patcher.sweep("resid_pre")[:, 0]  # (L, T)
        title = f"patching {corrupt} ← {prompt}: {metric}"
        figures.save(figures.patching_figure(restored, both, title=title), out / FILES["patching"])
        report["patching"] = {
            "corrupt": corrupt,
            "kind": "resid_pre",
            "clean": float(patcher.m_clean[0]),
            "corrupted": float(patcher.m_corrupted[0]),
            "restored": restored.round(6).tolist(),
        }
    write_text(out / FILES["json"], json.dumps(report, ensure_ascii=False, indent=1))
    return report
