"""A font that can draw the Chinese in our plots, chosen by what it actually covers.

matplotlib's default (DejaVu Sans) has no CJK glyphs: 这款手机 would come out as empty boxes ("tofu").
``cjk_font(text)`` picks, in order, the first font that has a glyph for every character of ``text``:

1. ``MiniGPTSansCJK-Regular.otf`` shipped in this folder — Noto Sans CJK SC (SIL OFL 1.1, ``OFL.txt``)
   cut down to GB 2312 level 1 plus every character of the review corpus (``scripts/make_cjk_font.py``);
2. any font matplotlib knows about (installed system fonts, e.g. ``apt install fonts-noto-cjk``).

If none covers everything, the one covering the most is returned with a ``MissingGlyphsWarning`` naming the
characters that will show as boxes; if no font covers any of them, ``None`` (matplotlib's default) with
that warning. Coverage is read from each font's character map (fontTools), not guessed from its name.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

SHIPPED = Path(__file__).with_name("MiniGPTSansCJK-Regular.otf")


class MissingGlyphsWarning(UserWarning):
    """Some characters of a plot's text have no glyph in any available font and will render as boxes."""


@functools.cache
def font_characters(path: str) -> frozenset[int]:
    """The code points that the font at ``path`` has a glyph for (empty if it cannot be read)."""
    from fontTools.ttLib import TTFont, TTLibError  # fontTools: only when a font file is checked

    try:
        with TTFont(path, fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except (OSError, TTLibError, AssertionError, KeyError):
        return frozenset()
    return frozenset(cmap)


def system_fonts() -> list[str]:
    """Paths of the fonts matplotlib's font manager found on this machine, less the "Last Resort" fonts:
    they map every code point to a placeholder box, i.e. they draw tofu on purpose."""
    from matplotlib import font_manager  # matplotlib: only when a font is registered

    return sorted({f.fname for f in font_manager.fontManager.ttflist if "lastresort" not in f.fname.lower()})


def needed_characters(text: str) -> set[int]:
    """Code points that need a glyph: everything except whitespace and control characters."""
    return {ord(c) for c in text if not c.isspace() and c.isprintable()}


def cjk_font(text: str, candidates: Iterable[str | os.PathLike] | None = None) -> str | None:
    """Path of the first font in ``candidates`` (default: the shipped subset, then the system fonts) with a
    glyph for every character of ``text``; see the module docstring for the fallbacks and the warning."""
    if candidates is None:
        candidates = ([str(SHIPPED)] if SHIPPED.is_file() else []) + system_fonts()
    paths = [str(p) for p in candidates]
    need = needed_characters(text)
    best, best_missing = None, need
    for path in paths:
        missing = need - font_characters(path)
        if not missing:
            return path
        if len(missing) < len(best_missing):
            best, best_missing = path, missing
    if not need:
        return paths[0] if paths else None
    shown = "".join(sorted(chr(c) for c in best_missing)[:20])
    where = f"using {Path(best).name}, the closest" if best else "no font has any of them"
    warnings.warn(
        f"{len(best_missing)} character(s) have no glyph in any available font and will render as boxes: "
        f"{shown!r} ({where}). Install a CJK font (e.g. 'apt install fonts-noto-cjk') or reinstall minigpt, "
        f"whose shipped font is {SHIPPED.name}.",
        MissingGlyphsWarning,
        stacklevel=2,
    )
    return best
