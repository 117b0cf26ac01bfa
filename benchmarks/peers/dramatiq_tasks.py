"""The actors Dramatiq's benchmark workers serve: Redis broker plus the Results middleware on Redis."""
from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from .base import URL_ENV

backend = RedisBackend(url=os.environ[URL_ENV])
broker = RedisBroker(url=os.environ[URL_ENV])
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def noop() -> None:
    return None


@dramatiq.actor(store_results=True, max_retries=0)
def whoami() -> list[int]:
    return [os.getpid(), os.getppid()]
