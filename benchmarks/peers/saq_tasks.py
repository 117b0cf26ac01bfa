"""The jobs SAQ's benchmark workers run (`saq benchmarks.peers.saq_tasks.settings`)."""
from __future__ import annotations

import os
from typing import Any

from saq import Queue

from .base import CONCURRENCY_ENV, URL_ENV

QUEUE = "bench"


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def whoami(ctx: dict[str, Any]) -> list[int]:
    return [os.getpid(), os.getppid()]


settings = {
    "queue": Queue.from_url(os.environ[URL_ENV], name=QUEUE),
    "functions": [noop, whoami],
    "concurrency": int(os.environ[CONCURRENCY_ENV]),
}
