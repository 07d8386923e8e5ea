"""The GPT in Flax NNX: the same network as ``minigpt.reference``, line for line, jit-ready.

The modules own parameters named exactly like the reference layout (``minigpt.params``):
``model.h[0].attn.c_attn.weight`` is ``params["h"][0]["attn"]["c_attn"]["weight"]``, stored
``(in, out)``. Converting between the two is therefore a rename-free copy.

``fast=True`` swaps attention, LayerNorm and GELU for ``minigpt.kernels`` (same numbers, hand-written
backward passes that keep less memory); the code below is the plain reference version.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from minigpt import hostmem, kernels
from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, param_shapes, params_dtype, unflatten_params, validate_params
from minigpt.validation import check_targets, check_tokens

# Before JAX's first computation: XLA:CPU then frees each step's temporaries before the call returns
# (see minigpt.hostmem; MINIGPT_KEEP_FREED_MEMORY=0 opts out).
hostmem.execute_inline()


class Linear(nnx.Module):
    """y = x W + b, W: (in, out) ~ N(0, std²)."""

    def __init__(self, d_in: int, d_out: int, *, bias: bool, std: float, rngs: nnx.Rngs, dtype=jnp.float32):
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (d_in, d_out), dtype) * std)
        self.bias = nnx.Param(jnp.zeros((d_out,), dtype)) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        # The product is taken on the 2-D (B·T, in) view: the same numbers, but XLA:CPU compiles a 2-D dot
        # (and its gradient) to one large GEMM, ≈2.5× faster than the batched 3-D dot next to a fused GELU.
        y = (x.reshape(-1, x.shape[-1]) @ self.weight[...]).reshape(*x.shape[:-1], -1)  # (..., out)
        return y if self.bias is None else y + self.bias[...]


class LayerNorm(nnx.Module):
    """(x − μ) / √(σ² + ε) · γ + β over the last axis."""

    def __init__(self, dim: int, *, bias: bool, eps: float, dtype=jnp.float32, fast: bool = False):
        self.weight = nnx.Param(jnp.ones((dim,), dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype)) if bias else None
        self.eps = eps
        self.fast = fast

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.fast:
            return kernels.layer_norm(x, self.weight[...], None if self.bias is None else self.bias[...], self.eps)
        mu = jnp.mean(x, axis=-1, keepdims=True)  # (..., 1)
        var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)  # (..., 1)
        y = (x - mu) * jax.lax.rsqrt(var + self.eps) * self.weight[...]
        return y if self.bias is None else y + self.bias[...]


class Embedding(nnx.Module):
    """A table of rows; row i is the vector of id i."""

    def __init__(self, num: int, dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.weight = nnx.Param(jax.random.normal(rngs.params(), (num, dim), dtype) * 0.02)

    def __call__(self, ids: jax.Array) -> jax.Array:
        # mode="fill": an out-of-range id inside jit gives NaN instead of JAX's silent clamp.
        return jnp.take(self.weight[...], ids, axis=0, mode="fill", fill_value=jnp.nan)


class CausalSelfAttention(nnx.Module):
    """MultiHead(x) = Concat(head_1..head_H) Wᴼ with head_i = softmax(Q_i K_iᵀ/√d_k + M) V_i."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        C = cfg.n_embd
        self.c_attn = Linear(C, 3 * C, bias=cfg.bias, std=0.02, rngs=rngs, dtype=dtype)
        self.c_proj = Linear(C, C, bias=cfg.bias, std=0.02 / math.sqrt(2 * cfg.n_layer), rngs=rngs, dtype=dtype)
        self.attn_dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.resid_dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.n_head = cfg.n_head
        self.fast = fast

    def __call__(self, x: jax.Array, *, return_weights: bool = False):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)  # 3 × (B, T, C)
        q, k, v = (t.reshape(B, T, H, C // H).transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, H, T, d_k)
        dropout_on = self.attn_dropout.rate > 0 and not self.attn_dropout.deterministic
        if self.fast and not return_weights and not dropout_on:  # the kernel never forms the weights
            y, weights = kernels.causal_attention(q, k, v), None  # (B, H, T, d_k)
        else:
            scores = q @ k.swapaxes(-1, -2) / math.sqrt(C // H)  # (B, H, T, T)
            causal = jnp.tril(jnp.ones((T, T), dtype=bool))
            weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)  # (B, H, T, T)
            y = self.attn_dropout(weights) @ v  # (B, H, T, d_k)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # Concat(heads)
        y = self.resid_dropout(self.c_proj(y))
        return (y, weights) if return_weights else y


class MLP(nnx.Module):
    """GELU(x W_fc + b_fc) W_proj + b_proj, C → 4C → C."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        C = cfg.n_embd
        self.c_fc = Linear(C, 4 * C, bias=cfg.bias, std=0.02, rngs=rngs, dtype=dtype)
        self.c_proj = Linear(4 * C, C, bias=cfg.bias, std=0.02 / math.sqrt(2 * cfg.n_layer), rngs=rngs, dtype=dtype)
        self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.fast = fast

    def __call__(self, x: jax.Array) -> jax.Array:
        gelu = kernels.gelu if self.fast else functools.partial(jax.nn.gelu, approximate=True)
        return self.dropout(self.c_proj(gelu(self.c_fc(x))))


class Block(nnx.Module):
    """x + MHA(LN₁(x)), then + MLP(LN₂(·))."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        self.ln_1 = LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.layer_norm_eps, dtype=dtype, fast=fast)
        self.attn = CausalSelfAttention(cfg, rngs=rngs, dtype=dtype, fast=fast)
        self.ln_2 = LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.layer_norm_eps, dtype=dtype, fast=fast)
        self.mlp = MLP(cfg, rngs=rngs, dtype=dtype, fast=fast)

    def __call__(self, x: jax.Array, *, return_weights: bool = False):
        if return_weights:
            a, weights = self.attn(self.ln_1(x), return_weights=True)
        else:
            a, weights = self.attn(self.ln_1(x)), None
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return (x, weights) if return_weights else x


class GPT(nnx.Module):
    """Decoder-only Transformer: logits = LN_f(Blocks(wte[x] + wpe[t])) · wteᵀ.

    ``fast=True`` uses ``minigpt.kernels`` for attention, LayerNorm and GELU (same numbers, less memory
    in training); attention-weight maps and attention dropout always take the plain path.
    """

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, fast: bool = False):
        self.cfg = cfg
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, rngs=rngs, dtype=dtype)
        self.wpe = Embedding(cfg.block_size, cfg.n_embd, rngs=rngs, dtype=dtype)
        self.drop = nnx.Dropout(cfg.dropout, rngs=rngs)
        self.h = nnx.List([Block(cfg, rngs=rngs, dtype=dtype, fast=fast) for _ in range(cfg.n_layer)])
        self.ln_f = LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.layer_norm_eps, dtype=dtype, fast=fast)

    def embed(self, idx: jax.Array) -> jax.Array:
        T = idx.shape[1]
        return self.drop(self.wte(idx) + self.wpe(jnp.arange(T)))  # (B, T, C)

    def hidden_states(self, idx: jax.Array) -> jax.Array:
        """LN_f(hᴸ), (B, T, C)."""
        check_tokens(idx, self.cfg)
        x = self.embed(idx)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)

    def __call__(self, idx: jax.Array) -> jax.Array:
        """Logits (B, T, V) for token ids (B, T)."""
        return self.lm_head(self.hidden_states(idx))

    def lm_head(self, h: jax.Array) -> jax.Array:
        """Logits h · wteᵀ (the head is tied to the token embedding), as a 2-D dot like ``Linear``."""
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

    # -- the shared layout -------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: Params, cfg: GPTConfig, *, seed: int = 0, fast: bool = False) -> GPT:
        """A model holding exactly ``params`` (reference layout); ``seed`` drives dropout only."""
        return from_params(params, cfg, seed=seed, fast=fast)

    def to_params(self) -> Params:
        """The parameters as a reference-layout dict of NumPy arrays."""
        return to_params(self)


def token_nll(logits: jax.Array, targets: jax.Array, ignore_index: int = -1) -> jax.Array:
    """−log softmax(logits)[target] at every position, 0 where target == ignore_index; shape of targets."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))  # bf16 logits: the log-softmax in f32
    logp = jax.nn.log_softmax(logits, axis=-1)  # (..., V)
    keep = targets != ignore_index  # (...)
    nll = -jnp.take_along_axis(logp, jnp.where(keep, targets, 0)[..., None], axis=-1)[..., 0]  # (...)
    return jnp.where(keep, nll, 0.0)


def cross_entropy(logits: jax.Array, targets: jax.Array, ignore_index: int = -1) -> jax.Array:
    """L = −(1/N) Σ log P(target | context) over the N targets ≠ ignore_index (0 when N = 0)."""
    n = jnp.maximum(jnp.sum(targets != ignore_index), 1)
    return jnp.sum(token_nll(logits, targets, ignore_index)) / n.astype(jnp.promote_types(logits.dtype, jnp.float32))


def apply(
    params: Params,
    idx: jax.Array,
    cfg: GPTConfig,
    *,
    train: bool = False,
    key: jax.Array | None = None,
    fast: bool = True,
    remat: bool = False,
    dtype=None,
    output: str = "logits",
) -> jax.Array:
    """The GPT as a pure function of reference-layout ``params``: logits (B, T, V) for ids (B, T).

    Works inside ``jit`` (params may be tracers). ``train=True`` turns dropout on with masks drawn from
    ``key``; ``fast`` picks ``minigpt.kernels``; ``remat`` recomputes each block in the backward pass;
    ``dtype`` casts the params (e.g. bf16); ``output="hidden"`` returns LN_f(hᴸ) (B, T, C) instead.
    """
    model = merge_params(params, cfg, jax.random.key(0) if key is None else key, train=train, dtype=dtype, fast=fast)
    if output == "hidden":
        return model.hidden_states(idx) if not remat else model.ln_f(_remat_blocks(model, model.embed(idx)))
    if output != "logits":
        raise ValueError(f"output must be 'logits' or 'hidden', got {output!r}")
    if not remat:
        return model(idx)
    return model.lm_head(model.ln_f(_remat_blocks(model, model.embed(idx))))


def _remat_blocks(model: GPT, h: jax.Array) -> jax.Array:
    for block in model.h:
        h = nnx.remat(lambda b, h: b(h))(block, h)
    return h


@functools.lru_cache(maxsize=16)
def _graph(cfg: GPTConfig, fast: bool = False):
    """The static module graph of a ``GPT(cfg)``, split once: graph, param tree def and the layout name of
    each param leaf, and the (abstract) dropout RNG state."""
    abstract = nnx.eval_shape(lambda: GPT(cfg, rngs=nnx.Rngs(0), fast=fast))
    graphdef, param_state, rest_state = nnx.split(abstract, nnx.Param, ...)
    leaves, state_def = jax.tree_util.tree_flatten_with_path(param_state)
    # the nnx.State path of each leaf, e.g. ('h', 0, 'attn', 'c_attn', 'weight', .value) → "h.0.attn.c_attn.weight"
    names = [".".join(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)) for path, _ in leaves]
    rest_leaves, rest_def = jax.tree_util.tree_flatten(rest_state)
    return graphdef, state_def, names, rest_leaves, rest_def


def merge_params(params: Params, cfg: GPTConfig, key: jax.Array, *, train: bool, dtype=None, fast: bool = False) -> GPT:
    """A ``GPT`` holding ``params`` (reference layout), built inside or outside ``jit`` (params may be tracers).

    No validation and no copies: this is the pure-function path for jitted steps. Dropout layer i draws
    from ``fold_in(key, i)``; ``train=False`` switches dropout off. ``dtype`` casts the params (e.g. bf16);
    ``fast`` picks ``minigpt.kernels`` (see ``GPT``).
    """
    graphdef, state_def, names, rest_leaves, rest_def = _graph(cfg, fast)
    flat = flatten_params(params)
    values = [flat[n] if dtype is None else flat[n].astype(dtype) for n in names]
    state = jax.tree_util.tree_unflatten(state_def, [jnp.asarray(v) for v in values])
    is_key = [jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) for a in rest_leaves]
    rngs = [
        jax.random.fold_in(key, i) if k else jnp.zeros(a.shape, a.dtype)
        for i, (k, a) in enumerate(zip(is_key, rest_leaves, strict=True))
    ]
    model = nnx.merge(graphdef, state, jax.tree_util.tree_unflatten(rest_def, rngs))
    if not train:
        model.eval()
    return model


def _variable(model: GPT, name: str) -> nnx.Variable:
    node = model
    for part in name.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part, None)
        if node is None:
            raise ValueError(f"the Flax model has no parameter {name!r}")
    return node


def from_params(params: Params, cfg: GPTConfig, *, seed: int = 0, fast: bool = False) -> GPT:
    """Build a ``GPT`` holding ``params`` (validated by name and shape first).

    The module tree is built abstractly (``nnx.eval_shape``: no random init to compute, which
    costs seconds of per-shape compilation) and then filled: Params from ``params``, each
    dropout stream with its own key derived from ``seed``.
    """
    validate_params(params, cfg)
    dtype = params_dtype(params)
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "params are float64 but JAX would silently store them as float32; "
            "call jax.config.update('jax_enable_x64', True) first, or cast params to float32"
        )
    abstract = nnx.eval_shape(lambda: GPT(cfg, rngs=nnx.Rngs(params=0, dropout=seed), dtype=dtype, fast=fast))
    graphdef, state = nnx.split(abstract)
    flat, key = flatten_params(params), jax.random.key(seed)
    filled = []
    for i, (path, var) in enumerate(nnx.to_flat_state(state)):
        if isinstance(var, nnx.Param):
            value = jnp.asarray(flat[".".join(map(str, path))], dtype=dtype)
        elif isinstance(var, nnx.RngKey):
            value = jax.random.fold_in(key, i)
        elif isinstance(var, nnx.RngCount):
            value = jnp.zeros((), jnp.uint32)
        else:  # pragma: no cover - the model has no other state
            raise TypeError(f"unexpected state {path} of type {type(var).__name__}")
        filled.append((path, var.replace(value)))
    return nnx.merge(graphdef, nnx.from_flat_state(filled))


def to_params(model: GPT) -> Params:
    """Copy the model's parameters out as a reference-layout dict of NumPy arrays."""
    return unflatten_params({name: np.asarray(_variable(model, name).get_value()) for name in param_shapes(model.cfg)})
