"""minigpt.training.checkpoint: atomic saves, checksums, and restoring the newest checkpoint that is intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from train_data import CFG, damage

from minigpt.params import flatten_params
from minigpt.training import checkpoint as ckpt
from minigpt.training.step import init_params

ROOT = Path(__file__).resolve().parents[1]


def save_three(directory: Path) -> tuple[dict, dict]:
    """Checkpoints 2, 4, 6 of ``CFG``-shaped params (different at every step) with an AdamW state."""
    tx = optax.adam(1e-3)
    mngr = ckpt.manager(directory, keep=3)
    params_at, opt_at = {}, {}
    for step in (2, 4, 6):
        params = jax.tree.map(lambda a, s=step: jnp.asarray(a * s), init_params(CFG, 0))
        _, opt = tx.update(params, tx.init(params))  # moments that are not all zeros
        ckpt.save(mngr, step, params, opt, {"step": step, "model": CFG.to_dict()})
        params_at[step], opt_at[step] = ckpt.to_numpy(params), opt
    mngr.close()
    return params_at, jax.eval_shape(tx.init, ckpt.abstract_params(CFG))


def assert_same(got, expected):
    for name, a in flatten_params(expected).items():
        np.testing.assert_array_equal(np.asarray(flatten_params(got)[name]), a, err_msg=name)


@pytest.mark.parametrize(
    ("how", "item"), [("truncate", "params"), ("flip", "params"), ("flip", "opt_state"), ("delete", "params")]
)
def test_a_damaged_newest_checkpoint_is_reported_and_the_previous_one_restored(tmp_path, how, item):
    params_at, abstract_opt = save_three(tmp_path)
    damage(tmp_path / "6", how, item)
    messages = []
    params, opt, meta = ckpt.restore(tmp_path, CFG, abstract_opt, warn=messages.append)
    assert meta["step"] == 4 and opt is not None
    assert_same(params, params_at[4])
    assert messages[0].startswith(f"checkpoint step 6 ({tmp_path / '6'}) does not restore: ")
    assert messages[-1] == "using checkpoint step 4, the newest one that restores"
    if how == "flip":
        assert f"its {item} do not match their checksum" in messages[0]
    # asking for that step names it in one line; without the optimizer state a flip there does not matter
    if item == "params":
        with pytest.raises(ckpt.CheckpointError, match=r"^checkpoint step 6 .* does not restore .*pick another --step"):
            ckpt.restore(tmp_path, CFG, abstract_opt, step=6, warn=messages.append)
    else:
        assert ckpt.restore(tmp_path, CFG, None, step=6)[2]["step"] == 6


def test_orbax_alone_loads_a_flipped_bit_which_is_why_checkpoints_carry_checksums(tmp_path):
    """The finding behind the checksums: a bit flipped in the array data comes back as a silently wrong value."""
    shape = (256, 1024)  # a float ramp: its compressed data still decodes after the flip
    params = {"w": np.arange(np.prod(shape), dtype=np.float32).reshape(shape)}
    mngr = ckpt.manager(tmp_path, keep=1)
    ckpt.save(mngr, 1, params, {"mu": params}, {"step": 1})
    mngr.close()
    meta = ckpt.restore_meta(tmp_path)
    damage(tmp_path / "1", "flip")
    abstract = {"w": jax.ShapeDtypeStruct(shape, jnp.float32)}
    restored = ckpt.manager(tmp_path, read_only=True).restore(
        1, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract))
    )
    changed = int(np.sum(np.asarray(restored.params["w"]) != params["w"]))
    # no error from Orbax / TensorStore, only wrong numbers: one, or a few thousand when the flip lands in a
    # compressed run (which one depends on how TensorStore chunked the write)
    assert changed >= 1
    assert ckpt.tree_sha256(restored.params) != meta["sha256"]["params"] == ckpt.tree_sha256(params)


def test_when_no_checkpoint_restores_one_line_says_what_to_do(tmp_path):
    _, abstract_opt = save_three(tmp_path)
    for step in (2, 4, 6):
        damage(tmp_path / str(step), "truncate")
    messages = []
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.restore(tmp_path, CFG, abstract_opt, warn=messages.append)
    text = str(info.value)
    assert "\n" not in text and "none of the 3 checkpoints" in text and "start a new run" in text
    assert [m.split(" (")[0] for m in messages] == [f"checkpoint step {s}" for s in (6, 4, 2)]
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        ckpt.restore(tmp_path / "empty", CFG, None)


def test_tree_sha256_tells_bit_identical_trees_apart():
    a = {"x": np.zeros((2, 3), np.float32), "y": [np.arange(4, dtype=np.int32)]}
    assert ckpt.tree_sha256(a) == ckpt.tree_sha256(jax.tree.map(np.copy, a))
    flipped = jax.tree.map(np.copy, a)
    flipped["x"].view(np.uint32)[1, 2] ^= 1  # the smallest float32 change
    assert ckpt.tree_sha256(flipped) != ckpt.tree_sha256(a)
    assert ckpt.tree_sha256({"x": a["x"].reshape(3, 2), "y": a["y"]}) != ckpt.tree_sha256(a)  # shape counts
    assert ckpt.tree_sha256({"z": a["x"], "y": a["y"]}) != ckpt.tree_sha256(a)  # names count


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from minigpt.training import checkpoint as ckpt
    mngr = ckpt.manager(sys.argv[1], keep=3)
    for step in range(1, 10_000):
        params = {"w": np.full((512, 1024), float(step), np.float32), "h": [{"b": np.full(7, float(step), np.float32)}]}
        ckpt.save(mngr, step, params, {"mu": params}, {"step": step})
        print(step, flush=True)
    """
)


def test_sigkill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    directory = tmp_path / "ck"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in range(3):  # three completed saves, then kill in the middle of later ones
            assert proc.stdout.readline().strip(), "the saving subprocess died"
        time.sleep(0.05)
        proc.kill()  # SIGKILL
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    latest = ckpt.latest_step(directory)
    assert latest is not None and latest >= 3
    abstract = {
        "w": jax.ShapeDtypeStruct((512, 1024), jnp.float32),
        "h": [{"b": jax.ShapeDtypeStruct((7,), jnp.float32)}],
    }
    mngr = ckpt.manager(directory, read_only=True)
    restored = mngr.restore(latest, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract)))
    assert float(np.asarray(restored.params["w"]).min()) == float(np.asarray(restored.params["w"]).max()) == latest
    assert ckpt.tree_sha256(restored.params) == ckpt.restore_meta(directory, latest)["sha256"]["params"]
    # and a new manager can continue saving in the same directory
    mngr = ckpt.manager(directory, keep=3)
    one = {"w": np.zeros((2,), np.float32)}
    ckpt.save(mngr, latest + 100, one, {"mu": one}, {"step": latest + 100})
    assert ckpt.latest_step(directory) == latest + 100
