"""Every scenario of one system, in a process of its own; the results go to stdout as one JSON line.

`python -m benchmarks.peers.runner --peer NAME --url URL --plan JSON [--pid-file PATH]`

One process per system keeps one system's client threads and connections from running during the next
one's measurement, and lets a system whose library conflicts with ours (arq) run from its own virtualenv:
this module needs only the standard library and redis-py. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

import redis

from ..stats import fairness, percentile
from . import load
from .base import Peer
from .measure import measured
from .plan import Plan, Shape, schedule
from .processes import WorkerProcesses


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_ready(peer: Peer, workers: WorkerProcesses, shape: Shape, timeout_s: float) -> None:
    """Run whoami tasks until every worker process we started has answered (itself or a child of it)."""
    expected, seen = set(workers.pids), set[int]()
    deadline = time.monotonic() + timeout_s
    while not expected <= seen:
        workers.check_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker processes {sorted(expected - seen)} never ran a task in {timeout_s:g} s")
        for pid, ppid in peer.identify(2 * shape.slots, timeout_s):
            seen |= {pid, ppid}


def run_job(peer: Peer, client: redis.Redis, job: str, plan: Plan, last: bool) -> dict[str, Any]:
    """One measured scenario; `last`: nothing else runs on these workers after it (no need to drain)."""
    timeout = plan.result_timeout_s
    if job == "throughput":
        _, cost = measured(client, plan.tasks, lambda: peer.throughput(plan.tasks, plan.window, timeout))
        return {"tasks": plan.tasks, "window": plan.window, "rate": plan.tasks / cost["seconds"], **cost}
    if job == "latency":
        times, cost = measured(client, plan.round_trips, lambda: peer.latencies(plan.round_trips, timeout))
        return {"tasks": plan.round_trips, "p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3,
                "mean_ms": sum(times) / len(times) * 1e3, "max_ms": max(times) * 1e3, **cost}
    if job == "enqueue":
        handles, cost = measured(client, plan.tasks, lambda: peer.enqueue(plan.tasks))
        if not last:
            peer.wait_all(handles, timeout)  # not timed: the next phase starts with idle workers
        return {"tasks": plan.tasks, "rate": plan.tasks / cost["seconds"], **cost}
    if job == "saturation":
        (elapsed, counts), cost = measured(
            client, plan.saturation_tasks, lambda: peer.saturation(plan.producers, plan.saturation_tasks, timeout))
        return {"tasks": plan.saturation_tasks, "producers": plan.producers, "rate": plan.saturation_tasks / elapsed,
                "fairness": fairness(counts), "per_producer": counts, **cost, "seconds": elapsed}
    raise ValueError(f"unknown job {job!r}")


def run_shape(peer: Peer, client: redis.Redis, shape: Shape, jobs: list[str], plan: Plan,
              pid_file: Path | None, out: dict[str, Any]) -> None:
    client.flushall()  # no state (e.g. a previous shape's worker slots) carries over
    commands = [peer.worker_command(shape.concurrency, i) for i in range(shape.processes)]
    workers = WorkerProcesses(commands, peer.worker_env(shape.concurrency), pid_file)
    try:
        workers.start()
        peer.open()
        try:
            started = time.perf_counter()
            wait_ready(peer, workers, shape, plan.ready_timeout_s)
            log(f"[{peer.name}] {shape}: {shape.processes} worker processes ready in {time.perf_counter() - started:.1f} s")
            if "saturation" in jobs:
                peer.set_capacity(plan.saturation_slots)
            if plan.warmup:  # connections, scripts and caches warm before anything is measured
                peer.throughput(min(plan.warmup, plan.tasks), plan.window, plan.result_timeout_s)
            for rep in range(plan.reps):
                for index, job in enumerate(jobs):
                    workers.check_running()
                    last = rep == plan.reps - 1 and index == len(jobs) - 1
                    row = {"scenario": job, "shape": str(shape), "slots": shape.slots, "rep": rep,
                           **run_job(peer, client, job, plan, last)}
                    out["runs"].append(row)
                    shown = f"{row['rate']:,.0f} tasks/s" if "rate" in row else f"p50 {row['p50_ms']:.2f} ms"
                    log(f"[{peer.name}] {shape} {job} rep {rep + 1}/{plan.reps}: {shown}, "
                        f"{row['commands_per_task']:.1f} cmds/task")
        finally:
            peer.close()
    finally:
        workers.stop()
        out["worker_pids"].extend(sorted(workers.seen.items()))  # [pid, start time] pairs
        left = workers.left_running()
        workers.cleanup()
        if left:
            raise RuntimeError(f"worker processes still running after stop: {left}")


def run(name: str, url: str, plan: Plan, pid_file: Path | None) -> dict[str, Any]:
    try:
        peer = load(name, url, plan)
    except ImportError as exc:
        return {"system": name, "status": "unavailable", "runs": [],
                "reason": f"{exc} (install the peers with: pip install -e '.[bench]')"}
    out: dict[str, Any] = {"system": name, "version": peer.version(), "python": platform.python_version(),
                           "redis_py": redis.__version__, "notes": list(peer.notes), "runs": [], "worker_pids": [],
                           "status": "ok"}
    if (note := peer.note_for_run()) is not None:
        out["notes"].append(note)
    if (reason := peer.skip_reason()) is not None:
        return {**out, "status": "skipped", "reason": reason}
    client = redis.Redis.from_url(url, socket_timeout=30)
    try:
        for shape, jobs in schedule(plan, peer.shape_for):
            jobs = [j for j in jobs if j in peer.scenarios]
            if jobs:
                out["shapes"] = [*out.get("shapes", []), str(shape)]
                run_shape(peer, client, shape, jobs, plan, pid_file, out)
    except Exception as exc:  # noqa: BLE001  reported, not raised: the other systems still run
        log(f"[{name}] failed: {type(exc).__name__}: {exc}")
        out.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--plan", required=True, help="a Plan as JSON")
    parser.add_argument("--pid-file", type=Path, help="append each worker PID (and its start time) here")
    args = parser.parse_args(argv)
    # SIGTERM from the harness unwinds through the finally blocks, so the workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args.peer, args.url, Plan.from_json(args.plan), args.pid_file)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
