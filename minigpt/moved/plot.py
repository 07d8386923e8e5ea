"""``minigpt.plot`` was split: ``plot_run`` is in ``minigpt.viz.loss`` and the command in ``minigpt.commands.plot``;
kept for old imports."""

from minigpt.commands.plot import main
from minigpt.viz.loss import plot_run

__all__ = ["main", "plot_run"]
