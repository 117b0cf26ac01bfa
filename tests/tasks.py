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


@task(name="t.flaky", retries=3, retry_backoff_s=0.05)
def flaky(url, key, failures):
    """Fail the first `failures` runs (counted in Redis under `key`), then return the run number."""
    run = _client(url).incr(key)
    if run <= failures:
        raise RuntimeError(f"run {run} fails")
    return run


@task(name="t.retry_later")
def retry_later(url, key, delay_s):
    """Ask for one retry after delay_s via redispool.Retry; record each run's start time."""
    from redispool import Retry

    r = _client(url)
    r.rpush(key, time.time())
    if r.llen(key) == 1:
        raise Retry(delay=delay_s)
    return r.llen(key)


@task(name="t.die")
def die():
    """A poison pill: kills the process that runs it, every time."""
    os.kill(os.getpid(), 9)


@task(name="t.die_once")
def die_once(url, key):
    """Kill the running process on the first run only; later runs return the run count."""
    run = _client(url).incr(key)
    if run == 1:
        os.kill(os.getpid(), 9)
    return run


@task(name="t.spin")
def spin(seconds):
    """Busy Python code for `seconds` (a time limit can interrupt it in thread execution)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


@task(name="t.lost_fails", on_worker_lost="fail")
def lost_fails(url, key):
    """Record a run and block on the gate: used to kill its worker mid-run (at-most-once policy)."""
    r = _client(url)
    r.rpush(key, os.getpid())
    r.blpop(f"{key}:gate", 60)
    return "finished"


@task(name="t.hold")
def hold(url, key, seconds):
    """Record a run (pid) and sleep: a task to kill or pause its worker under."""
    _client(url).rpush(key, os.getpid())
    time.sleep(seconds)
    return os.getpid()
