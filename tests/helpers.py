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
