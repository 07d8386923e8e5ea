"""The GPT in Flax NNX — the same network as ``minigpt.reference.model``, jit-ready — and its bridges to the
one parameter layout (``minigpt.params``).

The modules own parameters named exactly like the reference layout: ``model.h[0].attn.c_attn.weight`` is
``params["h"][0]["attn"]["c_attn"]["weight"]``, stored ``(in, out)``, so converting is a rename-free copy.

Three ways across, one convention: a model computes deterministic (inference) logits unless training is
asked for (``train=True``, or ``model.train()``), as transformers' ``from_pretrained`` does.

* ``from_params(params, cfg)`` → a validated ``GPT`` holding copies of ``params``;
* ``to_params(model)`` → the reference-layout dict back (NumPy copies, or the model's own arrays);
* ``apply(params, idx, cfg, ...)`` → the model as a pure function of params, for code inside ``jit``
  (training, decoding, the apps).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from minigpt.config import GPTConfig
from minigpt.model.cache import KVCache
from minigpt.model.layers import Block, Embedding, Linear, norm_layer, sow
from minigpt.model.lora import attach
from minigpt.params import Params, flatten_params, param_shapes, params_dtype, unflatten_params, validate_params
from minigpt.validation import check_targets, check_tokens


class GPT(nnx.Module):
    """Decoder-only Transformer: logits = LN_f(Blocks(wte[x] + wpe[t])) · wteᵀ.

    The config's Llama options: no ``wpe`` with pos="rope" (positions rotate q and k in every attention),
    RMSNorm, SwiGLU, n_kv_head key/value heads, and an untied ``lm_head`` (C → V) with tie_embeddings=False.

    ``fast``: ``minigpt.model.kernels`` for attention, LayerNorm and GELU (same numbers, less memory in training;
    attention maps, attention dropout and the cached path take the plain attention). ``remat``: each block's
    activations are recomputed in the backward pass instead of kept (``nnx.remat``). ``train``: dropout on.
    """

    def __init__(
        self,
        cfg: GPTConfig,
        *,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
        fast: bool = False,
        remat: bool = False,
        train: bool = False,
    ):
        self.cfg = cfg
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, rngs=rngs, dtype=dtype)
        self.wpe = Embedding(cfg.block_size, cfg.n_embd, rngs=rngs, dtype=dtype) if cfg.pos == "learned" else None
        self.drop = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.h = nnx.List([Block(cfg, rngs=rngs, dtype=dtype, fast=fast) for _ in range(cfg.n_layer)])
        self.ln_f = norm_layer(cfg, dtype=dtype, fast=fast)
        untied = not cfg.tie_embeddings
        self.lm_head = (
            Linear(cfg.n_embd, cfg.vocab_size, bias=False, std=0.02, rngs=rngs, dtype=dtype) if untied else None
        )
        self.remat = remat
        if not train:
            self.eval()

    def __call__(self, idx: jax.Array, *, cache: KVCache | None = None):
        """Logits (B, T, V) for token ids (B, T); with ``cache``: (logits, the cache with idx written)."""
        if cache is None:
            return sow(self, "logits", self.head(self.hidden_states(idx)))
        h, cache = self.hidden_states(idx, cache=cache)
        return self.head(h), cache

    def hidden_states(self, idx: jax.Array, *, cache: KVCache | None = None):
        """LN_f(hᴸ), (B, T, C); with ``cache``: (hidden states, new cache)."""
        check_tokens(idx, self.cfg)
        if cache is None:
            x = self.embed(idx)
            for block in self.h:
                x = nnx.remat(_call)(block, x) if self.remat else block(x)
            return self.ln_f(x)
        T = idx.shape[1]
        positions = cache.positions(T)  # (B, T): slot − start, the same for wpe and for RoPE
        x = self.drop(self.wte(idx) + (0 if self.wpe is None else self.wpe(positions)))  # (B, T, C)
        mask = cache.mask(T, x.dtype)  # (B, 1, T, S)
        layers = []
        for block, layer in zip(self.h, cache.layers, strict=True):
            x, layer = block(x, mask=mask, cache=layer, pos=cache.pos, positions=positions)
            layers.append(layer)
        return self.ln_f(x), cache.advance(layers, T)

    def embed(self, idx: jax.Array) -> jax.Array:
        if self.wpe is None:  # RoPE: positions enter every attention instead
            return self.drop(self.wte(idx))  # (B, T, C)
        T = idx.shape[1]
        return self.drop(self.wte(idx) + self.wpe(jnp.arange(T)))  # (B, T, C)

    def head(self, h: jax.Array) -> jax.Array:
        """Logits h · wteᵀ (tied to the token embedding), as a 2-D dot like ``Linear``; or the untied ``lm_head``."""
        if self.lm_head is not None:
            return self.lm_head(h)  # (B, T, V)
        return (h.reshape(-1, h.shape[-1]) @ self.wte.weight[...].T).reshape(*h.shape[:-1], -1)  # (B, T, V)

    def attention_weights(self, idx: jax.Array) -> jax.Array:
        """Per-layer, per-head attention weights (L, B, H, T, T)."""
        check_tokens(idx, self.cfg)
        x = self.embed(idx)
        maps = []
        for block in self.h:
            x, w = block(x, return_weights=True)
            maps.append(w)
        return jnp.stack(maps)

    def loss(self, idx: jax.Array, targets: jax.Array, ignore_index: int = -1) -> jax.Array:
        """−(1/N) Σ log P(targets | idx) over targets ≠ ignore_index (the causal log-likelihood)."""
        check_targets(targets, idx.shape, self.cfg, ignore_index)
        return cross_entropy(self(idx), targets, ignore_index)

    @classmethod
    def from_params(cls, params: Params, cfg: GPTConfig, *, seed: int = 0, **options: Any) -> GPT:
        """``from_params(params, cfg, ...)`` (see there)."""
        return from_params(params, cfg, seed=seed, **options)

    def to_params(self) -> Params:
        """The parameters as a reference-layout dict of NumPy arrays."""
        return to_params(self)


def _call(block: Block, x: jax.Array) -> jax.Array:
    return block(x)


# -- the token negative log-likelihood -----------------------------------------------------------
def token_nll(logits: jax.Array, targets: jax.Array, ignore_index: int = -1) -> jax.Array:
    """−log softmax(logits)[target] at every position (shape of targets), 0 where target == ignore_index.

    Computed in at least float32, so bfloat16 logits lose nothing in the log-softmax.
    """
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    logp = jax.nn.log_softmax(logits, axis=-1)  # (..., V)
    keep = targets != ignore_index  # (...)
    nll = -jnp.take_along_axis(logp, jnp.where(keep, targets, 0)[..., None], axis=-1)[..., 0]  # (...)
    return jnp.where(keep, nll, 0.0)


def cross_entropy(logits: jax.Array, targets: jax.Array, ignore_index: int = -1) -> jax.Array:
    """L = −(1/N) Σ log P(target | context) over the N targets ≠ ignore_index (0 when N = 0)."""
    nll = token_nll(logits, targets, ignore_index)
    return jnp.sum(nll) / jnp.maximum(jnp.sum(targets != ignore_index), 1).astype(nll.dtype)


# -- the parameter layout ------------------------------------------------------------------------
def jax_params(params: Params) -> Params:
    """``params`` as JAX arrays; float64 needs x64 switched on, or JAX would silently store float32."""
    if params_dtype(params) == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "params are float64 but JAX would silently store them as float32; run under "
            "`with jax.enable_x64(True):` (or jax.config.update('jax_enable_x64', True)), or cast params to float32"
        )
    # device_put, not jnp.asarray: asarray compiles an identity program ("stage") per array shape, a dozen
    # compilations before a model's first use; device_put only copies
    return jax.device_put(params)


def from_params(
    params: Params, cfg: GPTConfig, *, seed: int = 0, fast: bool = False, remat: bool = False, train: bool = False
) -> GPT:
    """A ``GPT`` holding ``params`` (validated by name and shape first), in inference mode unless ``train``.

    ``seed`` drives dropout only. The arguments may also come as ``(cfg, params)``, the order
    ``minigpt.hub.load_pretrained`` returns them in: ``GPT.from_params(*hub.load_pretrained(d))``.
    """
    if isinstance(params, GPTConfig) and isinstance(cfg, dict):
        params, cfg = cfg, params
    validate_params(params, cfg)
    values = flatten_params(jax_params(params))
    dtype = params_dtype(params)
    graphdef, state = _abstract(cfg, np.dtype(dtype), fast, remat, train)
    key = jax.random.key(seed)
    filled = []
    for i, (path, var) in enumerate(nnx.to_flat_state(state)):
        if isinstance(var, nnx.Param):
            value = jnp.asarray(values[".".join(map(str, path))], dtype=dtype)
        elif isinstance(var, nnx.RngKey):
            value = jax.random.fold_in(key, i)
        elif isinstance(var, nnx.RngCount):
            value = jnp.zeros((), jnp.uint32)
        else:  # pragma: no cover - the model has no other state
            raise TypeError(f"unexpected state {path} of type {type(var).__name__}")
        filled.append((path, var.replace(value)))
    return nnx.merge(graphdef, nnx.from_flat_state(filled))


@functools.lru_cache(maxsize=32)
def _abstract(cfg: GPTConfig, dtype: np.dtype, fast: bool, remat: bool, train: bool) -> tuple[Any, nnx.State]:
    """A ``GPT`` built abstractly, split: no random init to compute (seconds of per-shape compilation), and
    traced once per config rather than on every ``from_params``; ``from_params`` fills in the values."""
    build = functools.partial(GPT, cfg, dtype=dtype, fast=fast, remat=remat, train=train)
    return nnx.split(nnx.eval_shape(lambda: build(rngs=nnx.Rngs(params=0, dropout=0))))


def to_params(model: GPT, *, copy: bool = True) -> Params:
    """The model's parameters as a reference-layout dict: NumPy copies, or (``copy=False``) its own JAX arrays."""
    flat = {}
    for name in param_shapes(model.cfg):
        node = model
        for part in name.split("."):
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        flat[name] = np.asarray(node.get_value()) if copy else node[...]
    return unflatten_params(flat)


@functools.lru_cache(maxsize=32)
def _graph(cfg: GPTConfig, fast: bool, remat: bool):
    """The static module graph of a ``GPT(cfg)``, split once: graph, param tree def and the layout name of
    each param leaf, and the (abstract) dropout RNG state."""
    abstract = nnx.eval_shape(lambda: GPT(cfg, rngs=nnx.Rngs(0), fast=fast, remat=remat, train=True))
    graphdef, param_state, rest_state = nnx.split(abstract, nnx.Param, ...)
    leaves, state_def = jax.tree_util.tree_flatten_with_path(param_state)
    # the nnx.State path of each leaf, e.g. ('h', 0, 'attn', 'c_attn', 'weight', .value) → "h.0.attn.c_attn.weight"
    names = [".".join(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)) for path, _ in leaves]
    rest_leaves, rest_def = jax.tree_util.tree_flatten(rest_state)
    return graphdef, state_def, names, rest_leaves, rest_def


def _merge(params: Params, cfg: GPTConfig, key: jax.Array, *, train: bool, dtype, fast: bool, remat: bool) -> GPT:
    """A ``GPT`` around ``params`` without validation or copies (params may be tracers); dropout layer i draws
    from ``fold_in(key, i)``."""
    graphdef, state_def, names, rest_leaves, rest_def = _graph(cfg, fast, remat)
    flat = flatten_params(params)
    values = [jnp.asarray(flat[n] if dtype is None else flat[n].astype(dtype)) for n in names]
    state = jax.tree_util.tree_unflatten(state_def, values)
    is_key = [jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) for a in rest_leaves]
    rngs = [
        jax.random.fold_in(key, i) if k else jnp.zeros(a.shape, a.dtype)
        for i, (k, a) in enumerate(zip(is_key, rest_leaves, strict=True))
    ]
    model = nnx.merge(graphdef, state, jax.tree_util.tree_unflatten(rest_def, rngs))
    if not train:
        model.eval()
    return model


def apply(
    params: Params,
    idx: jax.Array,
    cfg: GPTConfig,
    *,
    train: bool = False,
    key: jax.Array | None = None,
    fast: bool = False,
    remat: bool = False,
    dtype: Any = None,
    cache: KVCache | None = None,
    output: str = "logits",
    lora: Params | None = None,
    lora_scale: float | None = None,
):
    """The GPT as a pure function of reference-layout ``params``: logits (B, T, V) for ids (B, T).

    For code that holds params rather than a module (training, decoding, the apps); works inside ``jit``
    (params may be tracers) and builds the module graph once per (cfg, fast, remat). ``train=True`` turns
    dropout on, with masks drawn from ``key``; ``fast``/``remat`` as in ``GPT``; ``dtype`` casts the params
    (e.g. ``jnp.bfloat16``); ``cache`` (``KVCache``) decodes incrementally and returns (logits, new cache);
    ``output="hidden"`` returns LN_f(hᴸ) (B, T, C) instead of logits. ``lora``: adapters
    (``minigpt.adapters`` layout) applied unmerged, x W + b + s (x A) B with s = ``lora_scale`` (``model.lora``).
    """
    if output not in ("logits", "hidden"):
        raise ValueError(f"output must be 'logits' or 'hidden', got {output!r}")
    if lora is not None and lora_scale is None:
        raise ValueError("lora= adapters need lora_scale= (α / r, e.g. LoraSpec.scale)")
    if train and key is None and cfg.dropout > 0:
        raise ValueError("train=True with dropout needs key= (a jax.random key) to draw the dropout masks")
    key = jax.random.key(0) if key is None else key
    model = _merge(params, cfg, key, train=train, dtype=dtype, fast=fast, remat=remat)
    if lora is not None:
        attach(model, lora, lora_scale, dtype)
    forward = model.hidden_states if output == "hidden" else model
    return forward(idx) if cache is None else forward(idx, cache=cache)
