"""Tasks the tests run, importable by real worker processes (`--import tests.tasks`)."""
from __future__ import annotations

import functools
import os
import time

import redis

from redispool import task

# Keeps the highest value a counter has reached: the tasks record the peak concurrency they observe.
_ENTER = """
local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return now
"""


@functools.lru_cache(maxsize=None)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30)


@task(name="t.echo")
def echo(value):
    return value


@task(name="t.add")
def add(a, b):
    return a + b


@task(name="t.fail")
def fail(message):
    raise ValueError(message)


@task(name="t.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@task(name="t.pid")
def pid():
    return os.getpid()


@task(name="t.unencodable")
def unencodable():
    return object()


@task(name="t.track")
def track(url, key, hold_s):
    """Count concurrent runs under `key`, keeping the peak at `key:peak`."""
    r = _client(url)
    r.eval(_ENTER, 2, f"{key}:now", f"{key}:peak")
    try:
        time.sleep(hold_s)
    finally:
        r.decr(f"{key}:now")
    r.incr(f"{key}:done")
    return os.getpid()


@task(name="t.record")
def record(url, key, value):
    """Append value to a list at start: the list shows the order in which tasks began."""
    _client(url).rpush(key, value)
    return value


@task(name="t.gate")
def gate(url, key, timeout_s=30):
    """Block until something is pushed to `key` (the test opens the gate)."""
    r = _client(url)
    r.rpush(f"{key}:entered", 1)
    got = r.blpop(key, timeout_s)
    return got is not None
