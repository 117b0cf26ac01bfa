"""The jobs arq's benchmark workers run (`arq benchmarks.peers.arq_tasks.WorkerSettings`).

arq polls: its workers look for jobs every `poll_delay` (default 0.5 s) and `Job.result` polls too. At the
default a worker starts at most `max_jobs` jobs per half second, so both use POLL_S instead.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from .base import CONCURRENCY_ENV, URL_ENV

POLL_S = 0.005


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def whoami(ctx: dict[str, Any]) -> list[int]:
    return [os.getpid(), os.getppid()]


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, whoami]
    redis_settings = RedisSettings.from_dsn(os.environ[URL_ENV])
    max_jobs = int(os.environ[CONCURRENCY_ENV])
    poll_delay = POLL_S
