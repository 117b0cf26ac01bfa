"""The functions RQ's benchmark workers run (RQ imports them by dotted name)."""
from __future__ import annotations

import os


def noop() -> None:
    return None


def whoami() -> list[int]:
    """(pid, parent pid): a forking worker's work horse reports the worker as its parent."""
    return [os.getpid(), os.getppid()]
