"""Tasks the demo's worker processes serve (`--import redispool.demo_tasks`)."""
from __future__ import annotations

import time

from .registry import task


@task(name="demo.square")
def square(x: int) -> int:
    return x * x


@task(name="demo.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
