"""Small file systems for the tests of a full disk and a read-only run directory: a tmpfs of a given size and a
read-only bind mount.

Both need ``mount`` and root. Where a test cannot mount, the helpers say so (they yield False) and the test
injects the error the code would meet instead (``OSError`` ENOSPC or EROFS), so that it runs everywhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _mount(*args: str) -> bool:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` (``mount -o size=``, e.g. "1200k") at ``path`` for the duration; False: not mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield mounted
    finally:
        if mounted:
            _umount(path)


def resize(path: Path, size: str) -> None:
    """Grow (or shrink) the tmpfs mounted at ``path``: what freeing space on a full disk amounts to."""
    if not _mount("-o", f"remount,size={size}", str(path)):
        raise AssertionError(f"could not resize the tmpfs at {path}")


@contextlib.contextmanager
def read_only_view(source: Path, path: Path) -> Iterator[bool]:
    """``source`` bind-mounted read-only at ``path`` for the duration (root cannot write there either, unlike a
    ``chmod a-w`` folder); False: not mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("--bind", str(source), str(path))
    if mounted and not _mount("-o", "remount,bind,ro", str(path)):
        _umount(path)
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            _umount(path)
