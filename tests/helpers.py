"""Test helpers: wait on conditions with deadlines, never on bare sleeps."""
from __future__ import annotations

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
