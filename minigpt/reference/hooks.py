"""Named activations: where the reference lets you look inside the forward pass, and reach inside it.

The forward functions that take ``capture`` (``model.forward``, ``hidden_states``, ``block``,
``functional.multi_head_attention``, ``functional.mlp``) pass each activation they compute through
``see(capture, name, value)`` and continue with what it returns. With ``capture=None`` that is the value itself
and nothing is kept. With a dict the value is stored under its name, so one ordinary forward pass fills the dict
in forward order (``minigpt.interpret.capture`` lists the names). Any other mutable mapping may hand back a
different value under that name, which is how activation patching replaces one activation
(``minigpt.interpret.patching``) without a second copy of the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any


def see(capture: MutableMapping[str, Any] | None, name: str, value: Any) -> Any:
    """Store ``value`` as ``capture[name]`` and return what the mapping then holds there (``value`` for a dict);
    with ``capture=None``, return ``value`` untouched."""
    if capture is None:
        return value
    capture[name] = value
    return capture[name]


class Scoped(MutableMapping):
    """The names of one block or sublayer: ``Scoped(acts, "h.0.")["resid_pre"]`` is ``acts["h.0.resid_pre"]``."""

    def __init__(self, parent: MutableMapping[str, Any], prefix: str):
        self.parent, self.prefix = parent, prefix

    def __getitem__(self, name: str) -> Any:
        return self.parent[self.prefix + name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.parent[self.prefix + name] = value

    def __delitem__(self, name: str) -> None:
        del self.parent[self.prefix + name]

    def __iter__(self) -> Iterator[str]:
        return (k[len(self.prefix) :] for k in list(self.parent) if k.startswith(self.prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def scoped(capture: MutableMapping[str, Any] | None, prefix: str) -> MutableMapping[str, Any] | None:
    """``capture`` seen through ``prefix`` (e.g. ``"h.2.attn."``), or None when nothing is captured."""
    return None if capture is None else Scoped(capture, prefix)
