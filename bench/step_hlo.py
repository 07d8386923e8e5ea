"""Print the optimised HLO of the compiled ``baby`` train step, so two trees can be compared instruction for
instruction: a re-layout or a rename must not change what XLA runs.

    python bench/step_hlo.py > after.txt   # in each tree (e.g. a worktree at the old commit), then
    diff before.txt after.txt              # empty: the same program

Source locations (each instruction's ``metadata={...}`` and the FileNames / FunctionNames / FileLocations /
StackFrames tables) are stripped: they say where code lives, not what it computes.
"""

from __future__ import annotations

import re

import jax
import numpy as np

from minigpt.config import GPTConfig
from minigpt.training.config import TrainConfig
from minigpt.training.step import StepSpec, compiled_steps, dropout_key, init_params


def step_hlo(preset: str = "baby", vocab_size: int = 4618) -> str:
    cfg = GPTConfig.preset(preset, vocab_size=vocab_size)
    tcfg = TrainConfig(preset=preset)
    steps = compiled_steps(cfg, StepSpec.of(tcfg))
    params = steps.place_params(init_params(cfg, tcfg.seed))
    opt_state = steps.init_opt_state(params)
    x = np.zeros((tcfg.grad_accum, tcfg.batch_size, cfg.block_size), np.int32)
    key = jax.random.fold_in(dropout_key(tcfg.seed), 0)
    text = steps.compiled_train_step(params, opt_state, x, x, key).as_text()
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    tables = r"^(FileNames|FunctionNames|FileLocations|StackFrames)\n(.+\n)*\n?"
    return re.sub(tables, "", text, flags=re.M)


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    print(step_hlo())
