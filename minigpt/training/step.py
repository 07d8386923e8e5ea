"""The compiled training step: one pure function of (params, opt_state, micro-batches, key), jitted on a mesh.

    g  = Σ_i ∇ Σ_t nll_i,t / Σ_i n_i          gradient of the mean token loss over all k micro-batches
    then ``optim``: clip once on the accumulated gradient, AdamW(lr(step))

The loss is the model's own (``minigpt.model.apply`` and ``token_nll``), summed rather than averaged so that
micro-batches with different numbers of kept tokens combine exactly. One device is a 1×1 mesh: the same
``Steps`` runs on one CPU and on ``--mesh data=4,fsdp=2`` (``minigpt.training.distributed`` holds the sharding rules).
Dropout keys are ``fold_in(key, step)`` and then ``fold_in(·, micro-batch)``: pure functions of the step.

LoRA (``tcfg.lora_rank > 0``): the trained tree is the adapters (``minigpt.adapters``) and the base parameters
come in as a frozen, non-donated argument; the gradient is taken with respect to the adapters alone, so no
gradient of a base weight is ever computed (not masked: absent), and the optimizer state has the adapters' shapes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from minigpt import adapters, model
from minigpt.config import GPTConfig
from minigpt.params import Params, unflatten_params
from minigpt.reference import init_params as reference_init
from minigpt.training import distributed
from minigpt.training.checkpoint import abstract_params
from minigpt.training.config import RESUMABLE_CHANGES, TrainConfig
from minigpt.training.optim import global_norm, make_optimizer

# XLA:CPU hands dots to YNNPACK by default, which runs a *batched* dot (attention's (B·H) small
# products) on one thread; its Eigen path splits them over all cores: attention is ~1.6x faster, the 2-D
# GEMMs are the same. Reductions stay with YNNPACK (≈30 % faster than XLA's own loops here). Re-measured
# with 64-query attention blocks: XLA's defaults gave 35.0 ms per ``baby`` step in 10 of 12 processes but
# 49 ms (the whole run) in the other 2; with Eigen's dots 36.2 ms in 12 of 12.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

# Dropout masks come from XLA's RngBitGenerator rather than threefry: on CPU threefry makes the step
# several times slower to compile, and masks need no cryptographic quality (T5X and MaxText make the
# same choice). Still a pure function of the key, so resumed runs repeat exactly.
DROPOUT_RNG = "unsafe_rbg"


@functools.lru_cache(maxsize=1)
def cpu_compiler_options() -> dict[str, str] | None:
    """``CPU_COMPILER_OPTIONS`` when the default backend is a CPU whose XLA knows them, else None."""
    if jax.default_backend() != "cpu":
        return None
    try:  # the option is experimental: a later jaxlib may drop it, then we fall back to the defaults
        jax.jit(lambda a: a @ a, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.ones((2, 2))).compile()
    except Exception:  # noqa: BLE001 - any failure means "not supported here"
        return None
    return dict(CPU_COMPILER_OPTIONS)


def dropout_key(seed: int) -> jax.Array:
    """The run's base dropout key; step s uses fold_in(key, s), micro-batch i fold_in(·, i)."""
    return jax.random.key(seed, impl=DROPOUT_RNG)


def dropout_key_from_data(data: Any) -> jax.Array:
    """The key ``jax.random.key_data(key)`` came from (a checkpoint's meta stores it as a list)."""
    return jax.random.wrap_key_data(jnp.asarray(data, dtype=jnp.uint32), impl=DROPOUT_RNG)


def init_params(cfg: GPTConfig, seed: int) -> Params:
    """Fresh float32 parameters, GPT-2's initialisation (``minigpt.reference.init_params``), reference layout."""

    return reference_init(cfg, seed=seed, dtype=np.float32)


def nll_sum(logits: jax.Array, targets: jax.Array, ignore_index: int = -1) -> tuple[jax.Array, jax.Array]:
    """(Σ nll, n): ``model.token_nll`` summed over the kept positions, and their count n.

    Sums, not means, so that micro-batches with different numbers of kept tokens combine exactly:
    the batch loss is Σ_i sum_i / Σ_i n_i.
    """
    return jnp.sum(model.token_nll(logits, targets, ignore_index)), jnp.sum(targets != ignore_index)


@dataclass(frozen=True)
class StepSpec:
    """Everything that shapes the compiled step; jitted functions are cached per (GPTConfig, StepSpec, mesh)."""

    tcfg: TrainConfig

    @classmethod
    def of(cls, tcfg: TrainConfig) -> StepSpec:
        # Fields that do not enter the computation are reset so that runs differing only there share compiles
        # (the decay horizon is pinned first: by default it is max_steps); init_from only picks the first params.
        tcfg = tcfg.replace(lr_decay_steps=tcfg.decay_steps)
        unused = RESUMABLE_CHANGES | {"init_from"}
        return cls(tcfg.replace(**{name: TrainConfig.__dataclass_fields__[name].default for name in unused}))


def _divisor(count: jax.Array) -> jax.Array:
    return jnp.maximum(count, 1).astype(jnp.float32)  # kept tokens; 1 when none is kept


def model_logits(params: Params, frozen: Params | None, x: jax.Array, cfg: GPTConfig, tcfg: TrainConfig, **options):
    """The model on ``params``; with LoRA, ``params`` are the adapters and ``frozen`` the base they adapt."""
    compute = jnp.bfloat16 if tcfg.compute_dtype == "bfloat16" else None
    lora = tcfg.lora
    base, extra = (params, {}) if lora is None else (frozen, {"lora": params, "lora_scale": lora.scale})
    return model.apply(base, x, cfg, fast=tcfg.fast, dtype=compute, **options, **extra)


def train_step(
    params: Params, opt_state: Any, xs: jax.Array, ys: jax.Array, key: jax.Array, frozen: Params | None = None, *,
    cfg: GPTConfig, tcfg: TrainConfig, tx: Any, fused_norm: bool,
) -> tuple[Params, Any, dict[str, jax.Array]]:  # fmt: skip
    """xs, ys: (k, B, T) micro-batches; returns new (params, opt_state) and {loss, grad_norm}.

    With LoRA, ``params`` are the adapters (the only tree differentiated and updated) and ``frozen`` the base.
    """

    def loss_sum(params, x, y, key):
        return nll_sum(model_logits(params, frozen, x, cfg, tcfg, train=True, key=key, remat=tcfg.remat), y)

    def loss_mean(params, x, y, key):
        total, count = loss_sum(params, x, y, key)
        return total / _divisor(count), (total, count)

    def micro(carry, inputs):
        grads, total, count = carry
        x, y, i = inputs
        (s, n), g = jax.value_and_grad(loss_sum, has_aux=True)(params, x, y, jax.random.fold_in(key, i))
        return (jax.tree.map(jnp.add, grads, g), total + s, count + n), None

    if xs.shape[0] == 1:
        # No accumulation: differentiate the mean itself, so that 1/n scales the logits' gradient once instead of
        # every parameter's gradient afterwards (52 fewer kernels at ``baby``), and no loop copying every parameter.
        (_, (total, count)), grads = jax.value_and_grad(loss_mean, has_aux=True)(
            params, xs[0], ys[0], jax.random.fold_in(key, 0)
        )
    else:
        init = (jax.tree.map(jnp.zeros_like, params), jnp.float32(0), jnp.int32(0))
        (grads, total, count), _ = jax.lax.scan(micro, init, (xs, ys, jnp.arange(xs.shape[0])))
        grads = jax.tree.map(lambda g: g / _divisor(count), grads)
    grad_norm = global_norm(grads, fused_norm)  # the same expression as the clip's: XLA computes it once
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(jnp.add, params, updates)
    return params, opt_state, {"loss": total / _divisor(count), "grad_norm": grad_norm}


def eval_step(
    params: Params, x: jax.Array, y: jax.Array, frozen: Params | None = None, *, cfg: GPTConfig, tcfg: TrainConfig
) -> Any:
    """(Σ nll, n) of one (B, T) batch with dropout off (``params``/``frozen`` as in ``train_step``)."""
    return nll_sum(model_logits(params, frozen, x, cfg, tcfg), y)


def single_device_mesh() -> Mesh:
    """The 1×1×1 mesh of this process's first device: what "no --mesh" means."""
    return distributed.make_mesh("data=1", jax.local_devices()[:1])


class Steps:
    """The jitted ``train_step`` and ``eval_step`` for one model config and step spec, on ``mesh``.

    Parameters (reference layout) and AdamW moments keep the FSDP layout of ``distributed.param_spec`` from step
    to step (on one device: everything on it); batches are split along data × fsdp. The fused global norm is
    exact and cheapest when the gradients are whole on every device (fsdp = 1); with sharded parameters it would
    gather every shard everywhere, so then each leaf is summed where it lives.
    """

    def __init__(self, cfg: GPTConfig, spec: StepSpec, mesh: Mesh | None = None) -> None:
        tcfg = spec.tcfg
        self.cfg, self.mesh = cfg, single_device_mesh() if mesh is None else mesh
        self.lora = tcfg.lora
        fused = self.mesh.shape["fsdp"] == 1
        replicated = NamedSharding(self.mesh, P())
        self.param_shardings = distributed.param_shardings(cfg, self.mesh)
        if self.lora is None:
            self.abstract_trained = abstract_params(cfg)
            self.tx = make_optimizer(tcfg, self.abstract_trained, fused_norm=fused)
            self.opt_shardings = distributed.opt_state_shardings(self.tx, cfg, self.mesh)
            self.trained_shardings, frozen = self.param_shardings, ()
        else:  # the adapters are small: replicated, like their optimizer state
            self.abstract_trained = abstract = abstract_adapters(cfg, self.lora)
            self.tx = make_optimizer(tcfg, abstract, fused_norm=fused)
            self.trained_shardings = jax.tree.map(lambda _: replicated, abstract)
            self.opt_shardings = jax.tree.map(lambda _: replicated, jax.eval_shape(self.tx.init, abstract))
            frozen = (self.param_shardings,)
        # what a checkpoint's "params" item holds: the base and, with LoRA, the adapters beside it
        self.checkpoint_shardings = adapters.join(
            self.param_shardings, None if self.lora is None else self.trained_shardings
        )
        self._micro = NamedSharding(self.mesh, P(None, distributed.BATCH_AXES, None))  # (k, B, T): split B
        self._batch = NamedSharding(self.mesh, P(distributed.BATCH_AXES, None))  # (B, T)
        self._addressable = all(d.process_index == jax.process_index() for d in self.mesh.devices.flat)
        self.train_fn = functools.partial(train_step, cfg=cfg, tcfg=tcfg, tx=self.tx, fused_norm=fused)
        self.eval_fn = functools.partial(eval_step, cfg=cfg, tcfg=tcfg)
        options = cpu_compiler_options() if tcfg.fast else None
        # One jit with shardings serves every mesh, one device included: on a 1×1 mesh XLA compiles the same
        # instructions as a plain jit (only the parameters' sharding annotations differ) and ``bench/mesh_jit.py``
        # at baby measured mesh/plain at a median 0.99 (10 alternating rounds), so no second wrapper is kept.
        # Parameters and optimizer state are donated: XLA writes the new ones into the old buffers instead of
        # allocating fresh ones every step (3× the parameters), which also makes the heap fragment less around
        # XLA's per-step temporaries (small, 10 steps: peak RSS 2.4 → 1.2 GiB). Callers must not reuse the
        # params / opt_state they passed in (pass copies if they need them).
        self._train = jax.jit(
            self.train_fn,
            in_shardings=(self.trained_shardings, self.opt_shardings, self._micro, self._micro, None, *frozen),
            out_shardings=(self.trained_shardings, self.opt_shardings, replicated),
            donate_argnums=(0, 1),
            compiler_options=options,
        )
        self._eval = jax.jit(
            self.eval_fn,
            in_shardings=(self.trained_shardings, self._batch, self._batch, *frozen),
            out_shardings=replicated,
            compiler_options=options,
        )

    def place_params(self, params: Params) -> Params:
        """Host or device parameters → global arrays in this mesh's layout."""
        return distributed.put(params, self.param_shardings)

    def place_adapters(self, lora: Params) -> Params:
        """Host or device LoRA adapters → global arrays (replicated)."""
        return distributed.put(lora, self.trained_shardings)

    def init_opt_state(self, trained: Params) -> Any:
        """``tx.init`` of the trained tree (the params, or with LoRA the adapters) straight into its layout."""
        return jax.jit(self.tx.init, out_shardings=self.opt_shardings)(trained)

    def _inputs(self, arrays: tuple[Any, ...], sharding: NamedSharding) -> tuple[Any, ...]:
        distributed.check_batch(np.shape(arrays[0])[-2], self.mesh)
        if self._addressable:
            return arrays  # jit places host arrays by its in_shardings
        return distributed.put(arrays, (sharding,) * len(arrays))  # each process keeps only its own shards

    def _in_layout(self, tree: Any, shardings: Any) -> Any:
        """``tree`` in this mesh's layout. Arrays made elsewhere (``jnp.asarray``, ``tx.init``) would otherwise
        make jit compile the step a second time for their sharding, on one device too (6 s at ``tiny``)."""
        first = jax.tree.leaves(tree)[0]
        if getattr(first, "sharding", None) == jax.tree.leaves(shardings)[0]:
            return tree  # the training loop's case: the previous step's outputs
        return jax.device_put(tree, shardings) if self._addressable else distributed.put(tree, shardings)

    def train_step(
        self, params: Params, opt_state: Any, xs: Any, ys: Any, key: jax.Array, lora: Params | None = None
    ) -> tuple[Params, Any, dict[str, jax.Array]]:
        """One optimizer step on (k, B, T) micro-batches; donates the trained tree and ``opt_state``.

        Returns (new params, opt_state, metrics); with LoRA pass ``lora=adapters``: then the adapters are trained
        and returned in place of the params, which are neither donated nor changed.
        """
        xs, ys = self._inputs((xs, ys), self._micro)
        opt_state = self._in_layout(opt_state, self.opt_shardings)
        trained, frozen = self._split(params, lora)
        return self._train(trained, opt_state, xs, ys, key, *frozen)

    def compiled_train_step(self, params: Params, opt_state: Any, xs: Any, ys: Any, key: jax.Array) -> Any:
        """The XLA executable ``train_step`` runs for these shapes (``.as_text()`` is its HLO; nothing is run)."""
        return self._train.lower(params, opt_state, xs, ys, key).compile()

    def eval_step(self, params: Params, x: Any, y: Any, lora: Params | None = None) -> tuple[jax.Array, jax.Array]:
        """(Σ nll, n) of one (B, T) batch, dropout off (with LoRA: ``lora`` the adapters on ``params``)."""
        x, y = self._inputs((x, y), self._batch)
        trained, frozen = self._split(params, lora)
        return self._eval(trained, x, y, *frozen)

    def _split(self, params: Params, lora: Params | None) -> tuple[Params, tuple[Params, ...]]:
        """(the tree the step trains, the frozen extra argument or none), each in its layout."""
        if (lora is None) != (self.lora is None):
            raise ValueError("LoRA steps need lora= adapters, and only LoRA steps take them")
        if lora is None:
            return self._in_layout(params, self.param_shardings), ()
        return self._in_layout(lora, self.trained_shardings), (self._in_layout(params, self.param_shardings),)


def abstract_adapters(cfg: GPTConfig, spec: adapters.LoraSpec) -> Params:
    """Shapes (float32) of the adapters of ``spec`` on ``cfg``: the optimizer's and the restore's target."""
    shapes = adapters.adapter_shapes(cfg, spec)
    return unflatten_params({n: jax.ShapeDtypeStruct(s, jnp.float32) for n, s in shapes.items()})


@functools.lru_cache(maxsize=16)
def compiled_steps(cfg: GPTConfig, spec: StepSpec, mesh: str = "") -> Steps:
    """Cached ``Steps``: runs with the same shapes, optimiser settings and mesh share their compiled code.

    ``mesh`` is a ``--mesh`` spec such as ``"data=4,fsdp=2"`` (checked against the devices and the batch size);
    ``""`` is this process's first device.
    """
    if not mesh:
        return Steps(cfg, spec)
    grid = distributed.make_mesh(mesh)
    distributed.check_batch(spec.tcfg.batch_size, grid)
    return Steps(cfg, spec, grid)
