"""Worker for tests/test_training_distributed.py, run in a subprocess with several (fake) CPU devices.

    python tests/distributed_worker.py meshes OUT_DIR       20 steps on one device and on meshes of 8 devices
    python tests/distributed_worker.py multi OUT_DIR PORT I  process I of 2 (jax.distributed on 127.0.0.1:PORT)

Writes JSON (and .npz of parameters) into OUT_DIR; the test compares them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

STEPS = 20
MESHES = ("data=8", "data=4,fsdp=2", "data=2,fsdp=4", "fsdp=8")


def setup():
    from minigpt import GPTConfig
    from minigpt.data import BatchSampler
    from minigpt.training.config import TrainConfig
    from minigpt.training.step import StepSpec, compiled_steps

    cfg = GPTConfig.preset("tiny", n_layer=1, dropout=0.1)  # V=64, T=16, C=32
    tcfg = TrainConfig(batch_size=8, max_steps=STEPS, warmup_steps=2, lr=1e-2, min_lr=1e-3)
    rng = np.random.default_rng(0)
    tokens = np.resize(rng.integers(0, cfg.vocab_size, size=37), 4000).astype(np.int32)
    sampler = BatchSampler(tokens, cfg.block_size, tcfg.batch_size, seed=0)
    return cfg, tcfg, sampler, compiled_steps(cfg, StepSpec.of(tcfg))


def on_mesh(cfg, tcfg, spec):
    """The same step on a mesh: ``minigpt.training.step.Steps`` with that mesh (one device is a 1×1 one)."""
    from minigpt.training.distributed import make_mesh
    from minigpt.training.step import Steps, StepSpec

    return Steps(cfg, StepSpec.of(tcfg), make_mesh(spec))


def run(steps, params, opt_state, sampler, n, key):
    import jax

    losses = []
    for s in range(n):
        x, y = sampler.batch(s)
        params, opt_state, out = steps.train_step(params, opt_state, x[None], y[None], jax.random.fold_in(key, s))
        losses.append(float(out["loss"]))
    return params, opt_state, losses


def flat_numpy(params):
    from minigpt.params import flatten_params

    return {k: np.asarray(v) for k, v in flatten_params(params).items()}


def meshes(out: Path) -> None:
    import jax
    import jax.numpy as jnp

    from minigpt.params import flatten_params
    from minigpt.training import checkpoint
    from minigpt.training.distributed import param_specs
    from minigpt.training.step import dropout_key, init_params

    cfg, tcfg, sampler, steps = setup()
    assert len(jax.devices()) == 8, jax.devices()
    key = dropout_key(0)
    p0 = init_params(cfg, 0)
    params = jax.tree.map(jnp.asarray, p0)
    _, _, single = run(steps, params, steps.tx.init(params), sampler, STEPS, key)
    result = {"single": single, "losses": {}, "shardings_ok": {}}
    for spec in MESHES:
        sh = on_mesh(cfg, tcfg, spec)
        params = sh.place_params(p0)
        opt = sh.init_opt_state(params)
        params, opt, losses = run(sh, params, opt, sampler, STEPS, key)
        result["losses"][spec] = losses
        # every parameter and both AdamW moments carry the layout param_specs promises
        specs = param_specs(cfg, sh.mesh.shape["fsdp"])
        mu, nu = opt[1][0].mu, opt[1][0].nu  # chain(clip, adamw): adamw = (ScaleByAdamState, ...)
        bad = []
        for tree in (params, mu, nu):
            for name, arr in flatten_params(tree).items():
                if arr.sharding.spec != specs[name] or arr.sharding.mesh.shape != sh.mesh.shape:
                    bad.append(f"{name}: {arr.sharding}")
                n_shards = len(
                    {
                        tuple((s.start, s.stop) for s in sl)
                        for sl in arr.sharding.devices_indices_map(arr.shape).values()
                    }
                )
                expected = sh.mesh.shape["fsdp"] if "fsdp" in specs[name] else 1
                if n_shards != expected:
                    bad.append(f"{name}: {n_shards} distinct shards, expected {expected}")
        result["shardings_ok"][spec] = bad
        result.setdefault("specs", {})[spec] = {n: str(s) for n, s in specs.items()}
        if spec == "data=2,fsdp=4":  # save, then restore into another mesh shape
            mngr = checkpoint.manager(out / "ckpt")
            meta = {"step": STEPS, "model": cfg.to_dict()}
            checkpoint.save(mngr, STEPS, params, opt, meta)
            mngr.close()
            np.savez(out / "saved.npz", **flat_numpy(params))
            other = on_mesh(cfg, tcfg, "data=4,fsdp=2")
            abstract_opt = jax.eval_shape(other.tx.init, checkpoint.abstract_params(cfg))
            shardings = (other.param_shardings, other.opt_shardings)
            rp, ropt, _ = checkpoint.restore(out / "ckpt", cfg, abstract_opt, shardings=shardings)
            result["restored_specs"] = {n: str(a.sharding.spec) for n, a in flatten_params(rp).items()}
            np.savez(out / "restored_4x2.npz", **flat_numpy(rp))
            np.savez(out / "restored_mu_4x2.npz", **flat_numpy(ropt[1][0].mu))
            np.savez(out / "saved_mu.npz", **flat_numpy(mu))
    result["train_cli"] = train_runs(out)
    (out / "meshes.json").write_text(json.dumps(result))


def train_runs(out: Path) -> dict[str, list[float]]:
    """``minigpt.training.train`` with and without ``mesh``: the logged losses of 4 steps, resumed on another mesh."""
    from minigpt.training.config import TrainConfig
    from minigpt.training.loop import train
    from minigpt.training.runs import read_metrics

    cfg, _, _, _ = setup()
    data = out / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    stream = np.resize(rng.integers(0, cfg.vocab_size, size=37), 3400).astype(np.uint16)
    np.save(data / "train.npy", stream[:3000])
    np.save(data / "val.npy", stream[3000:])
    (data / "meta.json").write_text(json.dumps({"vocab_size": cfg.vocab_size}))
    base = TrainConfig(
        data=str(data),
        preset="tiny",
        batch_size=8,
        max_steps=4,
        log_interval=1,
        eval_interval=100,
        eval_batches=2,
        ckpt_interval=2,
        progress=False,
        lr=1e-2,
        warmup_steps=1,
        lr_decay_steps=4,  # the mesh run starts with max_steps=2: the schedule is fixed when a run starts
    )
    runs = {}
    for name, mesh in (("single", ""), ("mesh", "data=4,fsdp=2")):
        tcfg = base.replace(out=str(out / name), mesh=mesh, max_steps=2 if mesh else 4)
        train(cfg, tcfg, log=lambda *_: None)
        if mesh:  # resume the sharded run on another mesh shape
            train(cfg, tcfg.replace(mesh="fsdp=8", max_steps=4), resume=True, log=lambda *_: None)
        runs[name] = [r["loss"] for r in read_metrics(out / name) if "loss" in r]
    return runs


def multi(out: Path, port: int, pid: int) -> None:
    from minigpt.training.distributed import init_distributed

    init_distributed(f"127.0.0.1:{port}", 2, pid)
    import jax

    from minigpt.training.step import dropout_key, init_params

    cfg, tcfg, sampler, _ = setup()
    assert jax.process_count() == 2 and len(jax.devices()) == 4, (jax.process_count(), jax.devices())
    sh = on_mesh(cfg, tcfg, "data=2,fsdp=2")
    params = sh.place_params(init_params(cfg, 0))
    _, _, losses = run(sh, params, sh.init_opt_state(params), sampler, STEPS, dropout_key(0))
    (out / f"multi_{pid}.json").write_text(json.dumps({"losses": losses, "devices": len(jax.devices())}))
    jax.distributed.shutdown()


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "meshes":
        meshes(out)
    else:
        multi(out, int(sys.argv[3]), int(sys.argv[4]))
