"""Logit attribution: how much each attention head, each MLP and the embeddings add to one logit, or to a logit
difference such as 好 − 差.

The residual stream that reaches the final norm is a sum of parts, one per thing that wrote into it:

    hᴸ = h⁰ + Σ_l ( Σ_h z_{l,h} W_O[h] + b_O,l + MLP_l(…) )

h⁰ the embeddings, z_{l,h} W_O[h] head h of block l through its own rows of c_proj (``head_results``), b_O,l
c_proj's bias. The final norm is not linear, but with its scale held at the value it has for the whole stream,
s = 1/√(var(hᴸ) + ε) (RMSNorm: 1/√(mean(hᴸ²) + ε)), as is standard, it is: LN_f(hᴸ) = Σ_parts frozen(part) + β
(``frozen_norm``). A logit is u · LN_f(hᴸ) with u the unembedding's column of the target (minus the contrast's),
so it is the sum over parts of u · frozen(part), plus u · β: the parts sum to the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.interpret.capture import capture
from minigpt.params import Params


@dataclass
class Attribution:
    """``values[p]`` (B, T): part ``names[p]``'s share of the logit (difference) at every position; the parts sum
    to ``total`` (B, T), the model's own logit (difference). Parts: ``embed``, ``h.{l}.attn.head.{h}``,
    ``h.{l}.attn.bias`` (when c_proj has a bias), ``h.{l}.mlp``, ``ln_f.bias`` (when the final norm has one)."""

    names: list[str]
    values: np.ndarray  # (P, B, T)
    total: np.ndarray  # (B, T)
    n_layer: int
    n_head: int

    def part(self, name: str) -> np.ndarray:
        """The (B, T) values of one part, by name."""
        if name not in self.names:
            raise KeyError(f"no part {name!r}; parts are {self.names}")
        return self.values[self.names.index(name)]

    def heads(self) -> np.ndarray:
        """(L, H, B, T): every head's share, by block and head."""
        return np.stack([[self.part(f"h.{i}.attn.head.{h}") for h in range(self.n_head)] for i in range(self.n_layer)])

    def mlps(self) -> np.ndarray:
        """(L, B, T): every MLP's share, by block."""
        return np.stack([self.part(f"h.{i}.mlp") for i in range(self.n_layer)])


def head_results(z: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    """What each head writes into the residual stream: z_h · W_O[h·d_k:(h+1)·d_k, :], (B, H, T, C).

    z (B, H, T, d_k) are the heads' outputs, W_O = c_proj's weight (H·d_k, C); Σ_h of them + b_O = attn.out.
    """
    H, d_k = z.shape[1], z.shape[-1]
    return np.einsum("bhtd,hdc->bhtc", z, w_o.reshape(H, d_k, -1))  # (B, H, T, C)


def frozen_norm(
    part: np.ndarray, stream: np.ndarray, ln: dict, kind: str = "layernorm", eps: float = 1e-5
) -> np.ndarray:
    """The final norm applied to one part of ``stream`` with the stream's scale held fixed, bias left out:

    LayerNorm: (p − mean(p)) · γ / √(var(hᴸ) + ε);   RMSNorm: p · γ / √(mean(hᴸ²) + ε).   (…, C) → (…, C)

    ``kind`` and ``eps`` as in ``GPTConfig.norm`` and ``layer_norm_eps``. Summed over the parts of hᴸ (and with β
    added) this is LN_f(hᴸ) itself: centring is linear, the scale is shared.
    """
    if kind == "rmsnorm":
        scale = 1.0 / np.sqrt(np.mean(stream * stream, axis=-1, keepdims=True) + eps)  # (…, 1)
        return part * scale * ln["weight"]
    scale = 1.0 / np.sqrt(np.var(stream, axis=-1, keepdims=True) + eps)  # (…, 1)
    return (part - np.mean(part, axis=-1, keepdims=True)) * scale * ln["weight"]


def unembedding(params: Params, cfg: GPTConfig) -> np.ndarray:
    """W_U (C, V): wteᵀ for a tied head, else lm_head's weight."""
    return params["wte"]["weight"].T if cfg.tie_embeddings else params["lm_head"]["weight"]


def check_token(token: Any, cfg: GPTConfig, what: str) -> int:
    if isinstance(token, bool) or not isinstance(token, (int, np.integer)) or not 0 <= token < cfg.vocab_size:
        raise ValueError(f"{what} must be a token id in [0, {cfg.vocab_size}), got {token!r}")
    return int(token)


def attribute(
    acts: dict[str, np.ndarray], params: Params, cfg: GPTConfig, target: int, contrast: int | None = None
) -> Attribution:
    """Split the logit of ``target`` (minus that of ``contrast``) in a capture ``acts`` into its parts."""
    target = check_token(target, cfg, "target")
    w_u = unembedding(params, cfg)
    u = w_u[:, target] if contrast is None else w_u[:, target] - w_u[:, check_token(contrast, cfg, "contrast")]  # (C,)
    stream = acts[f"h.{cfg.n_layer - 1}.resid_post"]  # (B, T, C): what the final norm sees
    names, parts = ["embed"], [acts["h.0.resid_pre"]]
    for i, p in enumerate(params["h"]):
        heads = head_results(acts[f"h.{i}.attn.z"], p["attn"]["c_proj"]["weight"])  # (B, H, T, C)
        names += [f"h.{i}.attn.head.{h}" for h in range(cfg.n_head)]
        parts += list(heads.transpose(1, 0, 2, 3))
        if "bias" in p["attn"]["c_proj"]:
            names.append(f"h.{i}.attn.bias")
            parts.append(np.broadcast_to(p["attn"]["c_proj"]["bias"], stream.shape))
        names.append(f"h.{i}.mlp")
        parts.append(acts[f"h.{i}.mlp.out"])
    ln = params["ln_f"]
    values = [frozen_norm(part, stream, ln, cfg.norm, cfg.layer_norm_eps) @ u for part in parts]  # P × (B, T)
    if "bias" in params["ln_f"]:
        names.append("ln_f.bias")
        values.append(np.broadcast_to(params["ln_f"]["bias"] @ u, stream.shape[:-1]))
    logits = acts["logits"]
    total = logits[..., target] - (0.0 if contrast is None else logits[..., contrast])  # (B, T)
    return Attribution(names, np.stack(values), total, cfg.n_layer, cfg.n_head)


def logit_attribution(
    params: Params,
    idx: Any,
    cfg: GPTConfig,
    target: int,
    contrast: int | None = None,
    *,
    backend: str = "numpy",
) -> Attribution:
    """``attribute`` on a fresh capture of ``idx`` (B, T) from the twin ``backend`` names."""
    return attribute(capture(params, idx, cfg, backend=backend), params, cfg, target, contrast)
