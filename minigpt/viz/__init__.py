"""Figures: attention maps, loss curves and what ``minigpt.interpret`` measures, each drawn on an explicit
``matplotlib.figure.Figure``.

    attention   who attends to whom, per layer and head, from either implementation, as heat maps
    loss        a run's train and validation loss curves (``minigpt plot``)
    diagrams    the lessons' teaching diagrams: decoder block, soft lookup, head split, KV cache, LoRA
    interpret   the logit lens, logit attribution and activation patching of ``minigpt.interpret``
                (``minigpt explain``)

Nothing here switches matplotlib's global backend or touches pyplot's state.
"""

from minigpt.viz.attention import attention_maps, plot_attention, token_labels
from minigpt.viz.loss import plot_run

__all__ = ["attention_maps", "plot_attention", "plot_run", "token_labels"]
