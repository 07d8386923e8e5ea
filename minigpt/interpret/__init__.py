"""minigpt.interpret — see inside the model: named activations, logit lens, logit attribution, activation patching,
and a layer-by-layer comparison that names where two implementations part.

Everything works on the reference-layout params of either twin (``backend="numpy"`` or ``"jax"``) and returns
NumPy arrays; the JAX model is imported only when ``backend="jax"`` asks for it.
"""

from minigpt.interpret.attribution import Attribution, attribute, logit_attribution
from minigpt.interpret.capture import activation_names, capture, time_axis
from minigpt.interpret.compare import LayerReport, LayerRow, compare_layers
from minigpt.interpret.lens import logit_lens, residual_streams
from minigpt.interpret.patching import Patcher, PatchResult, patch_activation, patching_sweep

__all__ = [
    "Attribution",
    "LayerReport",
    "LayerRow",
    "PatchResult",
    "Patcher",
    "activation_names",
    "attribute",
    "capture",
    "compare_layers",
    "logit_attribution",
    "logit_lens",
    "patch_activation",
    "patching_sweep",
    "residual_streams",
    "time_axis",
]
