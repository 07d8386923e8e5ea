"""The logit lens: read the residual stream after the embeddings and after every block as if it were the last.

    lens[l] = LN_f(hˡ) · W_U      l = 0 (the embeddings, h.0.resid_pre), 1 … L (h.{l−1}.resid_post)

with the model's own final norm LN_f and unembedding W_U (wteᵀ, or the untied lm_head). It shows from which block
on the model "knows" the next token: lens[L] is the model's logits, exactly, since it is the same computation on
the same numbers.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.interpret.capture import capture, check_backend
from minigpt.params import Params
from minigpt.reference.functional import norm
from minigpt.reference.model import lm_head


def residual_streams(acts: dict[str, np.ndarray], cfg: GPTConfig) -> list[np.ndarray]:
    """[h⁰, h¹, …, hᴸ]: the residual stream (B, T, C) after the embeddings and after each block of a capture."""
    return [acts["h.0.resid_pre"]] + [acts[f"h.{i}.resid_post"] for i in range(cfg.n_layer)]


def logit_lens(params: Params, idx: Any, cfg: GPTConfig, *, backend: str = "numpy") -> np.ndarray:
    """(L + 1, B, T, V): the residual streams of one forward pass on ``idx`` (B, T), each read through the final
    norm and the unembedding of the twin ``backend`` names ("numpy" or "jax"); the last entry is its logits."""
    check_backend(backend)
    streams = residual_streams(capture(params, idx, cfg, backend=backend), cfg)
    if backend == "numpy":
        read = [lm_head(norm(h, params["ln_f"], cfg.norm, cfg.layer_norm_eps), params, cfg) for h in streams]
    else:
        from minigpt.model.gpt import from_params  # JAX: the numpy backend runs without it

        model = from_params(params, cfg)
        read = [np.asarray(_jax_readout()(model, h)) for h in streams]
    return np.stack(read)  # (L + 1, B, T, V)


@functools.cache
def _jax_readout():
    """The Flax model's own final norm and head, jitted: LN_f(h) · W_U."""
    from flax import nnx  # Flax: as above

    return nnx.jit(lambda model, h: model.head(model.ln_f(h)))
