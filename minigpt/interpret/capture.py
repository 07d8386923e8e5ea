"""Every named activation of one forward pass, from the NumPy reference or the JAX model, under one naming scheme.

An activation is named after the module that computes it, i.e. its parameter prefix, plus what it is. In forward
order, for each block i = 0 … L−1 (``BLOCK_NAMES``):

    h.{i}.resid_pre      (B, T, C)       the residual stream entering block i (h.0.resid_pre: the embeddings)
    h.{i}.ln_1.out       (B, T, C)       LN₁ of it, the attention's input
    h.{i}.attn.q         (B, H, T, d_k)  queries, after RoPE when the config has it
    h.{i}.attn.k, .v     (B, H_kv, T, d_k)  keys (after RoPE) and values, before grouped heads share them
    h.{i}.attn.weights   (B, H, T, T)    softmax(QKᵀ/√d_k + M)
    h.{i}.attn.z         (B, H, T, d_k)  each head's output, weights · V, before c_proj mixes the heads
    h.{i}.attn.out       (B, T, C)       MultiHead(LN₁(x)), what the attention adds to the residual stream
    h.{i}.resid_mid      (B, T, C)       x + attn.out
    h.{i}.ln_2.out       (B, T, C)
    h.{i}.mlp.act        (B, T, F)       GELU(x W_fc) or SwiGLU, the MLP's hidden activation
    h.{i}.mlp.out        (B, T, C)       what the MLP adds to the residual stream
    h.{i}.resid_post     (B, T, C)       the residual stream leaving block i (= h.{i+1}.resid_pre)

then ``ln_f.out`` (B, T, C), the final norm, and ``logits`` (B, T, V).

Both twins record these inside their own forward pass, not in a copy of it: the reference through its ``capture``
argument (``minigpt.reference.hooks``), the Flax model through ``nnx.capture`` and the layers' ``sow``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.reference.model import forward

BLOCK_NAMES = (
    "resid_pre",
    "ln_1.out",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.weights",
    "attn.z",
    "attn.out",
    "resid_mid",
    "ln_2.out",
    "mlp.act",
    "mlp.out",
    "resid_post",
)
FINAL_NAMES = ("ln_f.out", "logits")
HEAD_SHAPED = ("attn.q", "attn.k", "attn.v", "attn.weights", "attn.z")  # (B, heads, T, …): time is axis 2
BACKENDS = ("numpy", "jax")

# A patch: activation name → (value to put in, boolean mask broadcastable to the activation: where to put it).
Patch = Mapping[str, tuple[np.ndarray, np.ndarray]]


def activation_names(cfg: GPTConfig) -> list[str]:
    """Every name ``capture`` returns for ``cfg``, in forward order."""
    return [f"h.{i}.{n}" for i in range(cfg.n_layer) for n in BLOCK_NAMES] + list(FINAL_NAMES)


def time_axis(name: str) -> int:
    """The axis of position t in the activation ``name``: 2 for the per-head tensors (B, H, T, …), else 1."""
    return 2 if any(name.endswith("." + n) for n in HEAD_SHAPED) else 1


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def capture(
    params: Params, idx: Any, cfg: GPTConfig, *, backend: str = "numpy", patch: Patch | None = None
) -> dict[str, np.ndarray]:
    """Run the model once on token ids ``idx`` (B, T) and return {name: activation} as NumPy arrays, in forward
    order (``activation_names``); ``acts["logits"]`` are the model's logits, unchanged by capturing.

    ``backend="numpy"`` runs ``minigpt.reference.forward``; ``"jax"`` the Flax ``GPT`` holding the same params
    (float64 params need JAX's x64 mode, ``with jax.enable_x64(True):``). ``patch`` replaces activations while
    the pass runs (``minigpt.interpret.patching``): for each name, ``value`` where ``mask`` is true.
    """
    check_backend(backend)
    idx = np.asarray(idx)
    if patch:
        unknown = sorted(set(patch) - set(activation_names(cfg)))
        if unknown:
            raise ValueError(f"cannot patch unknown activation(s) {unknown}; names are listed by activation_names(cfg)")
    if backend == "numpy":
        return _capture_numpy(params, idx, cfg, patch)
    return _capture_jax(params, idx, cfg, patch)


class _Patched(dict):
    """A capture dict that hands back the patched value of the activations named in ``patch``."""

    def __init__(self, patch: Patch):
        super().__init__()
        self.patch = patch

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        if name in self.patch:
            new, mask = self.patch[name]
            value = np.where(mask, np.asarray(new, value.dtype), value)
        super().__setitem__(name, value)


def _capture_numpy(params: Params, idx: np.ndarray, cfg: GPTConfig, patch: Patch | None) -> dict[str, np.ndarray]:
    acts: MutableMapping[str, np.ndarray] = _Patched(patch) if patch else {}
    forward(params, idx, cfg, capture=acts)
    return dict(acts)


def _capture_jax(params: Params, idx: np.ndarray, cfg: GPTConfig, patch: Patch | None) -> dict[str, np.ndarray]:
    from minigpt.model.gpt import from_params  # JAX: the numpy backend runs without it

    model = from_params(params, cfg)
    deltas = {}
    if patch:
        # nnx.capture adds a perturbation to an activation: patching is value + mask·(new − value), with value from
        # the unpatched pass (every activation before the patched one is the same in both passes).
        base = _capture_jax(params, idx, cfg, None)
        deltas = {
            n: np.where(mask, np.asarray(new) - base[n], 0).astype(base[n].dtype) for n, (new, mask) in patch.items()
        }
    _, acts = _jax_program()(model, idx, deltas)
    return _named(acts, cfg)


@functools.cache
def _jax_program():
    """One jitted function: the model's forward inside ``nnx.capture``, with perturbations ``deltas`` by name."""
    from flax import nnx  # Flax: as above

    def run(model, idx, deltas):
        init = {}
        for name, delta in deltas.items():
            *path, leaf = (int(p) if p.isdigit() else p for p in name.split("."))
            node = init
            for p in path:
                node = node.setdefault(p, {})
            node[leaf] = nnx.Perturbation(delta)
        return nnx.capture(lambda m, i: m(i), nnx.Intermediate, init=init or None)(model, idx)

    return nnx.jit(run)


def _named(state: Any, cfg: GPTConfig) -> dict[str, np.ndarray]:
    """An ``nnx.capture`` State of intermediates → {dotted name: NumPy array} in ``activation_names`` order."""
    from flax import nnx  # Flax: as above

    found = {}
    for path, var in nnx.to_flat_state(state):
        (value,) = var.get_value()  # sow keeps a tuple, one entry per call: each module runs once per pass
        found[".".join(map(str, path))] = np.asarray(value)
    names = activation_names(cfg)
    if set(found) != set(names):  # pragma: no cover - a layer that stopped recording
        raise RuntimeError(f"the JAX model recorded {sorted(found)}, expected {names}")
    return {n: found[n] for n in names}
