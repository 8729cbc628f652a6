"""Interrupted training: Ctrl-C and SIGTERM end a run in a checkpoint."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training, after the checkpoint of ``step`` was written."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, job schedulers) like Ctrl-C, so that training ends in a checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
