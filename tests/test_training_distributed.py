"""minigpt.training.distributed: meshes of 8 fake CPU devices and 2 processes give the single-device losses.

The 8-device runs happen in ONE subprocess (``tests/distributed_worker.py``) started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``, so this pytest process keeps its single device.
Tolerance: |loss_mesh − loss_single| ≤ 1e-5 over 20 AdamW steps in float32 (sharded reductions sum in a
different order; the observed gap is < 1e-6). Checkpoints moved between meshes must be bit-identical.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import PartitionSpec as P

from minigpt import GPTConfig
from minigpt.params import flatten_params
from minigpt.training.distributed import check_batch, make_mesh, memory_per_device, memory_table, param_spec, parse_mesh

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
LOSS_TOL = 1e-5
MESHES = ("data=8", "data=4,fsdp=2", "data=2,fsdp=4", "fsdp=8")


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    # appended: keeps the test-wide compile flags of tests/conftest.py
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = str(ROOT)
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    out = tmp_path_factory.mktemp("meshes")
    proc = subprocess.run(
        [sys.executable, str(WORKER), "meshes", str(out)], env=_env(8), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads((out / "meshes.json").read_text())


@pytest.mark.slow
def test_every_mesh_gives_the_single_device_losses(meshes):
    _, r = meshes
    single = np.array(r["single"])
    assert len(single) == 20 and single[-1] < single[0] - 1.0  # it trains
    assert set(r["losses"]) == set(MESHES)
    for spec, losses in r["losses"].items():
        np.testing.assert_allclose(losses, single, rtol=0, atol=LOSS_TOL, err_msg=spec)


def test_params_and_adamw_moments_stay_sharded_as_specified(meshes):
    _, r = meshes
    for spec in MESHES:
        assert r["shardings_ok"][spec] == [], spec  # .sharding.spec and number of distinct shards, after 20 steps
    # the rule worked out by hand for tiny (V=64, T=16, C=32, 4C=128) with fsdp=4: the largest divisible dim
    hand = {
        "wte.weight": P("fsdp", None),  # (64, 32): 64 is larger
        "wpe.weight": P(None, "fsdp"),  # (16, 32)
        "h.0.ln_1.weight": P("fsdp"),
        "h.0.attn.c_attn.weight": P(None, "fsdp"),  # (32, 96)
        "h.0.attn.c_proj.weight": P("fsdp", None),  # (32, 32): tie → first dim
        "h.0.mlp.c_fc.weight": P(None, "fsdp"),  # (32, 128)
        "h.0.mlp.c_proj.weight": P("fsdp", None),  # (128, 32)
        "h.0.mlp.c_fc.bias": P("fsdp"),
    }
    for name, spec in hand.items():
        assert r["specs"]["data=2,fsdp=4"][name] == str(spec), name
    assert all(v == str(P()) for v in r["specs"]["data=8"].values())  # no fsdp axis: all replicated


def test_checkpoint_moves_between_meshes_and_onto_one_device(meshes):
    out, r = meshes
    saved = np.load(out / "saved.npz")
    for other in ("restored_4x2", "restored_mu_4x2"):
        ref = np.load(out / ("saved.npz" if other == "restored_4x2" else "saved_mu.npz"))
        got = np.load(out / f"{other}.npz")
        assert set(got) == set(ref) and all(np.array_equal(got[k], ref[k]) for k in ref), other
    assert r["restored_specs"]["h.0.mlp.c_fc.weight"] == str(P(None, "fsdp"))
    # this process has ONE device: the 8-device checkpoint restores onto it unchanged
    from minigpt.training import checkpoint

    cfg = GPTConfig.preset("tiny", n_layer=1, dropout=0.1)
    params, _, meta = checkpoint.restore(out / "ckpt", cfg, None)
    flat = flatten_params(params)
    assert meta["step"] == 20 and set(flat) == set(saved)
    for k in saved:
        assert len(flat[k].sharding.device_set) == 1
        assert np.array_equal(np.asarray(flat[k]), saved[k]), k


def test_train_with_mesh_and_resume_on_another_mesh(meshes):
    _, r = meshes
    runs = r["train_cli"]
    assert len(runs["single"]) == len(runs["mesh"]) == 4  # 2 steps on data=4,fsdp=2 then 2 resumed on fsdp=8
    np.testing.assert_allclose(runs["mesh"], runs["single"], rtol=0, atol=LOSS_TOL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_agree_with_one(meshes, tmp_path):
    """jax.distributed on 127.0.0.1, 2 processes × 2 CPU devices (gloo collectives), mesh data=2,fsdp=2."""
    _, r = meshes
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "multi", str(tmp_path), str(port), str(i)],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=120)[0])
    finally:
        for p in procs:  # bounded: a hung peer never outlives the test
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(x[-3000:] for x in logs)
    for i in range(2):
        got = json.loads((tmp_path / f"multi_{i}.json").read_text())
        assert got["devices"] == 4
        np.testing.assert_allclose(got["losses"], r["single"], rtol=0, atol=LOSS_TOL)


# -- rules and bad input (this process, one device) -----------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=3), st.integers(1, 8))
def test_param_spec_shards_the_largest_divisible_dim(shape, fsdp):
    spec = param_spec(tuple(shape), fsdp)
    divisible = [i for i, s in enumerate(shape) if s % fsdp == 0]
    if fsdp == 1 or not divisible:
        assert spec == P()
        return
    dims = [i for i, a in enumerate(spec) if a == "fsdp"]
    assert len(dims) == 1 and dims[0] in divisible
    best = max(shape[i] for i in divisible)
    assert shape[dims[0]] == best and dims[0] == min(i for i in divisible if shape[i] == best)


def test_memory_per_device_against_a_hand_count():
    cfg = GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=6, bias=True)
    # fsdp=4: only dims of 4 or 24 split. wte (10,6) 60 | wpe (4,6) 24/4=6 | 3 LayerNorms 6×6=36 |
    # c_attn (6,18) 108 + (18,) 18 | attn c_proj (6,6) 36 + 6 |
    # c_fc (6,24) 144/4=36 + (24,) 24/4=6 | c_proj (24,6) 144/4=36 + 6
    values = 60 + 6 + 36 + 108 + 18 + 36 + 6 + 36 + 6 + 36 + 6
    assert memory_per_device(cfg, fsdp=4) == {
        "params": 4 * values,
        "grads": 4 * values,
        "adamw": 8 * values,
        "total": 16 * values,
    }
    assert memory_per_device(cfg, fsdp=1)["params"] == 4 * cfg.num_params()
    tiny = GPTConfig.preset("tiny")  # every dimension even: fsdp=2 halves everything
    assert memory_per_device(tiny, fsdp=2)["total"] * 2 == memory_per_device(tiny)["total"] == 16 * tiny.num_params()
    table = memory_table(("tiny",), (1, 2))
    assert f"{16 * tiny.num_params() / 2**20:,.1f} MiB" in table


def test_bad_meshes_and_batches_are_refused_clearly():
    assert parse_mesh("data=4,fsdp=2") == {"data": 4, "fsdp": 2, "model": 1}
    with pytest.raises(ValueError, match="2 devices .* but 1 are available"):
        make_mesh("data=2")
    with pytest.raises(ValueError, match="unknown mesh axis 'dp'"):
        parse_mesh("dp=2")
    with pytest.raises(ValueError, match="positive integer"):
        parse_mesh("data=0")
    with pytest.raises(ValueError, match="given twice"):
        parse_mesh("data=2,data=2")
    with pytest.raises(ValueError, match="tensor parallelism"):
        parse_mesh("data=2,model=2")
    mesh = make_mesh("data=1", jax.devices()[:1])
    check_batch(5, mesh)
    fake = type("M", (), {"shape": {"data": 4, "fsdp": 2}})()
    with pytest.raises(ValueError, match=r"batch_size 12 is not divisible by data×fsdp = 4×2 = 8"):
        check_batch(12, fake)
    check_batch(16, fake)


def test_cli_mesh_that_does_not_fit_exits_with_a_message(tmp_path, capsys):
    from minigpt.commands.train import main

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "train.npy", np.arange(3000, dtype=np.uint16) % 64)
    np.save(data / "val.npy", np.arange(400, dtype=np.uint16) % 64)
    (data / "meta.json").write_text(json.dumps({"vocab_size": 64}))
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--progress", "false"]
    assert main([*args, "--mesh", "data=4,fsdp=2"]) == 2
    assert "8 devices" in capsys.readouterr().err
    assert main([*args, "--mesh", "fsdp=1,bogus=2"]) == 2
    assert "unknown mesh axis 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()
