"""Test helpers: wait on conditions with deadlines, never on bare sleeps."""
from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.01,
               message: str = "condition") -> T:
    """Return the first truthy value of predicate(); fail the test after timeout_s seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout_s:g} s (last value: {value!r})")
        time.sleep(interval_s)


# Keys that change on their own while workers run (heartbeats, reaper locks) or belong to one client.
VOLATILE_KEY_PARTS = (b":hb:", b":reaper", b":livecheck", b":reply:")


def pool_data(client, prefix: str = "rp") -> dict[bytes, bytes]:
    """A snapshot (DUMP) of every key under prefix except the volatile ones: equal snapshots mean nothing
    was written."""
    return {k: client.dump(k) for k in client.keys(f"{prefix}:*") if not any(p in k for p in VOLATILE_KEY_PARTS)}


class BackgroundSampler:
    """Calls `sample()` every interval_s from its own thread while used as a context manager, with its
    own Redis client (`self.client`); subclasses record what they read. Connection errors (a Redis being
    restarted) skip a sample."""

    def __init__(self, url: str, interval_s: float) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        import redis

        while not self._stop.is_set():
            try:
                self.sample()
            except redis.ConnectionError:
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self):  # noqa: ANN204 - returns the subclass instance
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()
