"""Ctrl-C and SIGTERM as a request to stop: the loop finishes its step, saves a checkpoint and returns."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignal:
    """SIGINT/SIGTERM set ``received``; a second Ctrl-C aborts at once (KeyboardInterrupt).

    Only the main thread may install handlers; elsewhere (a notebook's worker thread) this does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
