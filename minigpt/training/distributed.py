"""Training on many devices with JAX's own sharding: data parallel and FSDP over a named device mesh.

The devices are arranged in a grid with named axes (``jax.sharding.Mesh``)::

    data   each group of devices along this axis sees a different slice of the batch (gradients are averaged)
    fsdp   the batch is split along it too, AND every parameter / AdamW moment is split along it
           (fully sharded data parallel: each device stores 1/fsdp of the model and optimizer state)
    model  accepted in a spec only with size 1 (tensor parallelism is not part of minigpt)

A micro-batch (B, T) is split along B over data × fsdp devices: device (d, f) gets rows
[(d·F + f)·B/(D·F), (d·F + f + 1)·B/(D·F)). Nothing else changes: the step is the same pure function as
on one device (``minigpt.training.step.Steps``, where one device is a 1×1 mesh), jitted with ``NamedSharding``
input/output shardings, and XLA's SPMD partitioner inserts the collectives (all-gather of weights before use,
reduce-scatter of gradients). Checkpoints restore into any mesh (``checkpoint.restore(..., shardings=...)``).

Parameter rule (``param_spec``), from the reference layout's shapes alone: shard the LARGEST dimension
that is divisible by the fsdp axis size (ties: the earlier dimension); if no dimension divides, replicate
the tensor on every device. E.g. with fsdp=2, ``wte.weight`` (V, C) splits V; ``h.0.ln_1.bias`` (C,) splits C;
with fsdp=3 and C=32 a LayerNorm weight (32,) is replicated. AdamW's moments follow their parameter;
the step counter is replicated.

Multi-process (multi-host) runs use the same code: call ``jax.distributed.initialize`` first (``init_distributed``),
then ``jax.devices()`` lists every process's devices and the mesh spans them all; each process holds
only its own shards. Inputs are built with ``jax.make_array_from_callback`` from the full batch, which every
process computes identically (``BatchSampler`` is a pure function of the step).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from minigpt.config import GPTConfig
from minigpt.params import Params, param_shapes, unflatten_params

AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")  # the batch dimension is split over both


def parse_mesh(spec: str) -> dict[str, int]:
    """``"data=4,fsdp=2"`` → ``{"data": 4, "fsdp": 2, "model": 1}`` (missing axes have size 1)."""
    sizes = dict.fromkeys(AXES, 1)
    seen = set()
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        name, eq, value = part.partition("=")
        if name not in AXES:
            raise ValueError(
                f"unknown mesh axis {name!r} in {spec!r}; axes are {', '.join(AXES)} (e.g. 'data=4,fsdp=2')"
            )
        if not eq or not value.isdigit() or int(value) < 1:
            raise ValueError(f"mesh axis {name!r} needs a positive integer size, e.g. '{name}=2' (got {part!r})")
        if name in seen:
            raise ValueError(f"mesh axis {name!r} is given twice in {spec!r}")
        seen.add(name)
        sizes[name] = int(value)
    if not seen:
        raise ValueError(f"empty mesh spec {spec!r}; write e.g. 'data=4,fsdp=2'")
    if sizes["model"] != 1:
        raise ValueError(
            f"model={sizes['model']}: tensor parallelism is not implemented in minigpt; use data and fsdp axes "
            "(model=1 is accepted)"
        )
    return sizes


def make_mesh(spec: str, devices: list[Any] | None = None) -> Mesh:
    """A ``Mesh`` with axes (data, fsdp, model) over ``devices`` (default: all of ``jax.devices()``).

    The product of the axis sizes must equal the number of devices: a mesh never silently leaves devices idle.
    """
    sizes = parse_mesh(spec)
    devices = list(jax.devices() if devices is None else devices)
    shape = tuple(sizes[a] for a in AXES)
    if math.prod(shape) != len(devices):
        raise ValueError(
            f"mesh {spec!r} has {math.prod(shape)} devices (data×fsdp×model = {'×'.join(map(str, shape))}) but "
            f"{len(devices)} are available ({devices[0].platform}); make the product equal {len(devices)}"
        )
    return Mesh(np.asarray(devices, dtype=object).reshape(shape), AXES)


def batch_ways(mesh: Mesh) -> int:
    """How many slices the batch dimension is cut into: data × fsdp."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def check_batch(batch_size: int, mesh: Mesh) -> None:
    """Raise a ValueError unless the micro-batch splits evenly over data × fsdp."""
    ways = batch_ways(mesh)
    if batch_size % ways:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by data×fsdp = {mesh.shape['data']}×{mesh.shape['fsdp']} "
            f"= {ways}; choose a batch_size that is a multiple of {ways} (e.g. {ways * max(1, batch_size // ways)})"
        )


def param_spec(shape: tuple[int, ...], fsdp: int) -> P:
    """The PartitionSpec of one parameter: the largest dimension divisible by ``fsdp`` goes on the fsdp axis."""
    if fsdp == 1:
        return P()
    candidates = [(size, -i) for i, size in enumerate(shape) if size % fsdp == 0]
    if not candidates:
        return P()  # replicated: no dimension splits evenly
    dim = -max(candidates)[1]
    return P(*[("fsdp" if i == dim else None) for i in range(len(shape))])


def param_specs(cfg: GPTConfig, fsdp: int) -> dict[str, P]:
    """Dotted name → PartitionSpec for every parameter of ``cfg`` (see the module docstring for the rule)."""
    return {name: param_spec(shape, fsdp) for name, shape in param_shapes(cfg).items()}


def param_shardings(cfg: GPTConfig, mesh: Mesh) -> Params:
    """The parameters' ``NamedSharding`` tree in the reference layout."""
    return unflatten_params({n: NamedSharding(mesh, s) for n, s in param_specs(cfg, mesh.shape["fsdp"]).items()})


def opt_state_shardings(tx: Any, cfg: GPTConfig, mesh: Mesh) -> Any:
    """Shardings of ``tx.init(params)``: each parameter-shaped leaf (AdamW mu, nu) follows its parameter."""
    import optax  # Optax: only for the optimizer state's layout

    from minigpt.training.checkpoint import abstract_params  # checkpoint imports this module: a cycle at import

    abstract_opt = jax.eval_shape(tx.init, abstract_params(cfg))
    replicated = NamedSharding(mesh, P())
    return optax.tree_map_params(
        tx,
        lambda _leaf, sharding: sharding,
        abstract_opt,
        param_shardings(cfg, mesh),
        transform_non_params=lambda _leaf: replicated,
    )


def put(tree: Any, shardings: Any) -> Any:
    """Host (NumPy) or device arrays → global ``jax.Array``s with the given shardings (works multi-process).

    Every process passes the full array; each keeps only the shards of its own devices.
    """

    def one(x: Any, sharding: NamedSharding) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)  # already global: let JAX move the shards
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree, shardings)


def init_distributed(coordinator: str, num_processes: int, process_id: int, cpu_collectives: str = "gloo") -> None:
    """``jax.distributed.initialize`` (call before any other JAX call); on CPU, collectives go through gloo.

    On GPU/TPU clusters leave the arguments to the launcher: ``jax.distributed.initialize()`` with no arguments
    reads SLURM / Open MPI / Cloud TPU environment variables.
    """
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


# -- memory per device ---------------------------------------------------------------------------
def memory_per_device(cfg: GPTConfig, data: int = 1, fsdp: int = 1, bytes_per_value: int = 4) -> dict[str, int]:
    """Bytes of training state held by one device: params + gradients + AdamW (mu, nu), float32.

    A tensor sharded by ``param_spec`` holds size/fsdp values on each device; a replicated one all of them.
    Gradients have the parameters' layout (XLA reduce-scatters them straight into it); AdamW keeps two
    moments per parameter. The data axis replicates the state, so it does not change these figures;
    activations (which the batch split does shrink) are not counted.
    """
    del data  # the state is replicated along data
    per = 0
    for shape in param_shapes(cfg).values():
        size = math.prod(shape)
        per += size // fsdp if param_spec(shape, fsdp) != P() else size
    params = per * bytes_per_value
    return {"params": params, "grads": params, "adamw": 2 * params, "total": 4 * params}


def memory_table(
    presets: tuple[str, ...] = ("tiny", "baby", "small", "gpt2"), fsdp: tuple[int, ...] = (1, 2, 4, 8)
) -> str:
    """A Markdown table: training-state MiB per device for each preset and fsdp size."""
    head = "| preset | parameters | " + " | ".join(f"fsdp={f}" for f in fsdp) + " |"
    rows = [head, "|" + "---|" * (len(fsdp) + 2)]
    for name in presets:
        cfg = GPTConfig.preset(name)
        cells = [f"{memory_per_device(cfg, fsdp=f)['total'] / 2**20:,.1f} MiB" for f in fsdp]
        rows.append(f"| {name} | {cfg.num_params():,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


__all__ = [
    "AXES",
    "BATCH_AXES",
    "batch_ways",
    "check_batch",
    "init_distributed",
    "make_mesh",
    "memory_per_device",
    "memory_table",
    "opt_state_shardings",
    "param_shardings",
    "param_spec",
    "param_specs",
    "parse_mesh",
    "put",
]
