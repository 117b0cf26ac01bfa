"""Recovery times with real processes: `python -m benchmarks.recovery [--ttl SECONDS] [--runs N]`.

Measures, on a private redis-server, how long after a fault a task runs again or the pool serves again:
kill -9 of a busy worker, SIGSTOP of a busy worker (a pause: only the heartbeat TTL can tell), and
Redis itself killed (-9, no persistence) and restarted. Prints medians and worst cases.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

import redispool
from redispool.embedded import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def start_worker(url: str, ttl_s: float) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(ROOT / "worker_main.py"), "--url", url, "--pool", "bench", "--concurrency", "1",
           "--import", "tests.tasks", "--heartbeat-ttl", str(ttl_s), "--log-level", "ERROR"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(predicate, timeout_s: float = 120.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError("condition not met")
        time.sleep(0.005)
    return time.monotonic() - start


def worker_fault(url: str, ttl_s: float, sig: int, run: int) -> float:
    """Seconds from the fault to the task starting again on the other worker."""
    r = redis.Redis.from_url(url)
    r.flushall()
    workers = [start_worker(url, ttl_s) for _ in range(2)]
    try:
        with redispool.Pool("bench", url) as pool:
            wait_for(lambda: pool.stats()["slots"] == 2)
            key = f"starts:{run}"
            pool.submit("t.hold", url, key, 3.0)
            wait_for(lambda: r.llen(key) == 1)
            victim = next(w for w in workers if w.pid == int(r.lindex(key, 0)))
            victim.send_signal(sig)
            return wait_for(lambda: r.llen(key) == 2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGCONT)
            w.kill()
            w.wait()


def redis_restart(server: RedisServer, ttl_s: float) -> float:
    """Seconds from Redis coming back to the first task completing again (workers re-register)."""
    workers = [start_worker(server.url, ttl_s) for _ in range(2)]
    try:
        with redispool.Pool("bench", server.url) as pool:
            wait_for(lambda: pool.stats()["slots"] == 2)
            server.stop()
            server.start()
            back = time.monotonic()
            pool.submit("t.echo", 1).result(120)
            return time.monotonic() - back
    finally:
        for w in workers:
            w.kill()
            w.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=float, default=10.0, help="worker heartbeat TTL in seconds (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per fault (default 3)")
    args = parser.parse_args()
    rows = []
    with RedisServer() as server:
        kills = [worker_fault(server.url, args.ttl, signal.SIGKILL, i) for i in range(args.runs)]
        pauses = [worker_fault(server.url, args.ttl, signal.SIGSTOP, i) for i in range(args.runs)]
        restarts = [redis_restart(server, args.ttl) for _ in range(args.runs)]
    for name, values in (("kill -9 of a busy worker: task runs again after", kills),
                         ("SIGSTOP of a busy worker: task runs again after", pauses),
                         ("Redis kill -9 + restart: first task done after", restarts)):
        rows.append((name, statistics.median(values), max(values)))
    table = Table(title=f"recovery times, heartbeat TTL {args.ttl:g} s, {args.runs} runs each")
    table.add_column("fault")
    table.add_column("median", justify="right")
    table.add_column("worst", justify="right")
    for name, median, worst in rows:
        table.add_row(name, f"{median:.2f} s", f"{worst:.2f} s")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
