"""Writing a file so that a crash or a failed write never leaves it half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one rename: readers see the old file or the new one, never half.

    The temporary file sits beside ``path`` (a rename is atomic only within one file system) and is removed
    when the write fails, so a failed write leaves the old file as it was and nothing else behind.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
