"""``minigpt.train``: the names training had before it became the ``minigpt.training`` package (kept importable).

New code imports from ``minigpt.training.*`` and, for run directories, ``minigpt.training.runs``.
"""

from minigpt.commands.train import main
from minigpt.training.config import TrainConfig
from minigpt.training.loop import train
from minigpt.training.optim import clip_by_global_norm, global_norm, learning_rate, make_optimizer
from minigpt.training.progress import flops_per_token, matmul_peak_flops
from minigpt.training.runs import load_run, read_metrics
from minigpt.training.step import Steps, StepSpec, compiled_steps, dropout_key, init_params

__all__ = [
    "StepSpec",
    "Steps",
    "TrainConfig",
    "clip_by_global_norm",
    "compiled_steps",
    "dropout_key",
    "flops_per_token",
    "global_norm",
    "init_params",
    "learning_rate",
    "load_run",
    "main",
    "make_optimizer",
    "matmul_peak_flops",
    "read_metrics",
    "train",
]
