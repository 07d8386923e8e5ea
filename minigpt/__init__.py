"""minigpt — a from-scratch, educational GPT: a NumPy reference and a JAX/Flax NNX twin that agree."""

from minigpt.config import PRESETS, GPTConfig
from minigpt.model import GPT, from_params, to_params
from minigpt.params import flatten_params, param_shapes, unflatten_params, validate_params

__version__ = "0.1.0"

__all__ = [
    "GPT",
    "PRESETS",
    "GPTConfig",
    "flatten_params",
    "from_params",
    "param_shapes",
    "to_params",
    "unflatten_params",
    "validate_params",
]
