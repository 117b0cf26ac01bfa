"""The tasks Huey's benchmark consumers run: RedisHuey, results signalled to waiters (notify_result=True)."""
from __future__ import annotations

import os

from huey import RedisHuey

from .base import URL_ENV

# store_none: Huey keeps no result for a task that returns None unless told to, and a no-op returns None.
huey = RedisHuey("bench", url=os.environ[URL_ENV], notify_result=True, store_none=True)


@huey.task()
def noop() -> None:
    return None


@huey.task()
def whoami() -> list[int]:
    return [os.getpid(), os.getppid()]
