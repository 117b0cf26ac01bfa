"""The tasks Celery's benchmark workers serve: Redis broker, Redis result backend (URL from the environment)."""
from __future__ import annotations

import os

from celery import Celery

from .base import URL_ENV

app = Celery("bench", broker=os.environ[URL_ENV], backend=os.environ[URL_ENV])
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task
def noop() -> None:
    return None


@app.task
def whoami() -> list[int]:
    return [os.getpid(), os.getppid()]
