"""Memory: `python -m benchmarks.memory [--tasks N] [--parked N]`.

1. A worker process's resident memory (VmRSS) sampled while it runs N no-op tasks (default 1,000,000):
   it must stay flat. 2. What a parked task costs in Redis: used_memory before and after parking
   --parked tasks (default 10,000) with no worker to run them, per task.
"""
from __future__ import annotations

import argparse
import os
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


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def worker_rss(url: str, tasks: int, samples: int = 10) -> list[tuple[int, int]]:
    """(tasks done, worker RSS KiB) at each tenth of the run."""
    cmd = [sys.executable, str(ROOT / "worker_main.py"), "--url", url, "--pool", "mem", "--concurrency", "4",
           "--import", "redispool.demo_tasks", "--log-level", "ERROR"]
    worker = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    points = []
    try:
        with redispool.Pool("mem", url, queue_size=1024) as pool:
            while pool.stats()["slots"] < 4:
                time.sleep(0.05)
            step = tasks // samples
            for done in range(0, tasks, step):
                for _ in pool.map("demo.square", range(step), max_in_flight=1024):
                    pass
                points.append((done + step, rss_kib(worker.pid)))
    finally:
        worker.terminate()
        worker.wait(30)
    return points


def parked_bytes(url: str, parked: int) -> float:
    """Redis memory per parked task (no worker: every submit parks), with small arguments."""
    r = redis.Redis.from_url(url)
    r.flushall()
    with redispool.Pool("parked", url, queue_size=parked + 1) as pool:
        before = r.info("memory")["used_memory"]
        pool.submit_many("demo.square", [(i,) for i in range(parked)])
        after = r.info("memory")["used_memory"]
    return (after - before) / parked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--parked", type=int, default=10_000)
    args = parser.parse_args()
    with RedisServer() as server:
        points = worker_rss(server.url, args.tasks)
        per_parked = parked_bytes(server.url, args.parked)
    table = Table(title=f"worker RSS over {args.tasks:,} tasks (2nd sample is the baseline)")
    table.add_column("tasks done", justify="right")
    table.add_column("worker RSS", justify="right")
    for done, kib in points:
        table.add_row(f"{done:,}", f"{kib / 1024:.1f} MiB")
    console = Console()
    console.print(table)
    growth = points[-1][1] - points[1][1]
    console.print(f"RSS growth after warm-up: {growth / 1024:+.1f} MiB; "
                  f"Redis memory per parked task: {per_parked:.0f} bytes (small arguments)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
