"""`redispool demo`: the pool end to end, on REDISPOOL_URL or an embedded Redis that it starts and stops.

Starts worker processes, submits tasks with a progress bar, checks every result, prints throughput,
latency percentiles and the pool's final state, and leaves nothing running.
"""
from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .embedded import embedded_server
from .errors import RedisPoolError
from .future import TaskFuture
from .pool import Pool


@contextlib.contextmanager
def _redis_url(console: Console) -> Iterator[str]:
    url = os.environ.get("REDISPOOL_URL")
    if url:
        console.print(f"Using Redis at [bold]{url}[/] (REDISPOOL_URL)")
        yield url
        return
    server = embedded_server()
    server.start()
    console.print(f"No REDISPOOL_URL: started an embedded {type(server).__name__} at [bold]{server.url}[/]")
    try:
        yield server.url
    finally:
        server.cleanup()


def _start_workers(url: str, pool: str, count: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "redispool", "worker", "--url", url, "--pool", pool,
           "--concurrency", str(concurrency), "--import", "redispool.demo_tasks", "--log-level", "WARNING"]
    return [subprocess.Popen(cmd) for _ in range(count)]


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(30))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def _wait_for_slots(pool: Pool, slots: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pool.stats()["slots"] < slots:
        if time.monotonic() > deadline:
            raise RedisPoolError(f"workers did not register {slots} slots within {timeout_s:g} s")
        time.sleep(0.05)


def run_demo(tasks: int = 3000, workers: int = 2, concurrency: int = 4, pool_name: str | None = None) -> int:
    """Returns the exit code: 0 when every result was right and the pool ended idle."""
    console = Console()
    pool_name = pool_name or f"demo-{os.getpid()}"
    with _redis_url(console) as url:
        procs = _start_workers(url, pool_name, workers, concurrency)
        try:
            with Pool(pool_name, url) as pool:
                _wait_for_slots(pool, max(1, workers * concurrency))
                latencies: list[float] = []
                wrong = 0
                progress = Progress(TextColumn("[bold]submitting"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=console)
                started = time.perf_counter()
                with progress:
                    bar = progress.add_task("tasks", total=tasks)
                    for i, (sent_at, future) in enumerate(_submit_all(pool, tasks)):
                        value = future.result(60)
                        latencies.append(time.perf_counter() - sent_at)
                        wrong += value != i * i
                        progress.advance(bar)
                elapsed = time.perf_counter() - started
                final = pool.stats()
            codes = _stop_workers(procs)
        finally:
            _stop_workers(procs)
    _report(console, tasks, elapsed, latencies, final, wrong, codes, workers, concurrency)
    return 0 if wrong == 0 and all(code == 0 for code in codes) and final["running"] == 0 else 1


def _submit_all(pool: Pool, tasks: int) -> Iterator[tuple[float, TaskFuture]]:
    """Submit with a bounded window (submit blocks when the pool is full) and yield in order."""
    window: list[tuple[float, TaskFuture]] = []
    limit = 2 * pool.capacity()
    for i in range(tasks):
        window.append((time.perf_counter(), pool.submit("demo.square", i)))
        if len(window) >= limit:
            yield window.pop(0)
    yield from window


def _report(console: Console, tasks: int, elapsed: float, latencies: list[float], final: dict[str, object],
            wrong: int, codes: list[int], workers: int, concurrency: int) -> None:
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    shape = f"{workers} worker processes x {concurrency} slots" if workers else f"{final['slots']} slots"
    table = Table(title=f"redispool demo: {tasks} tasks, {shape}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("throughput", f"{tasks / elapsed:,.0f} tasks/s")
    table.add_row("latency p50", f"{cuts[49] * 1000:.2f} ms")
    table.add_row("latency p99", f"{cuts[98] * 1000:.2f} ms")
    table.add_row("wrong results", str(wrong))
    for key in ("running", "capacity", "idle", "waiting", "slots", "workers"):
        table.add_row(f"final {key}", str(final[key]))
    if codes:
        table.add_row("worker exit codes", ", ".join(map(str, codes)))
    console.print(table)
