"""What a measured phase cost Redis, per task: commands, client requests and server CPU.

Snapshots (one INFO each) are taken right before and after the phase, so everything Redis served meanwhile
counts (the producer, the workers, their heartbeats and idle polling), except the harness's own INFO and
FLUSHALL. Commands come from INFO commandstats, which also counts the commands a Lua script runs; requests
are INFO stats' total_reads_processed (socket reads: one per round trip, however many commands it carries),
so a script is one request however much it does; CPU is INFO cpu's used_cpu_sys + used_cpu_user.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

T = TypeVar("T")
HARNESS_COMMANDS = {"info", "flushall"}


SNAPSHOT_READS = 2  # the "before" INFO and the "after" INFO each count one read


@dataclass(frozen=True)
class Snapshot:
    calls: dict[str, int]
    reads: int
    cpu_s: float


def snapshot(client: redis.Redis) -> Snapshot:
    info = client.info("commandstats", "cpu", "stats")
    calls = {key[len("cmdstat_"):]: int(value["calls"]) for key, value in info.items() if key.startswith("cmdstat_")}
    return Snapshot(calls, int(info["total_reads_processed"]), float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))


def cost(before: Snapshot, after: Snapshot, tasks: int) -> dict[str, Any]:
    delta = {name: after.calls[name] - before.calls.get(name, 0) for name in after.calls
             if name not in HARNESS_COMMANDS and after.calls[name] > before.calls.get(name, 0)}
    top = sorted(delta.items(), key=lambda item: -item[1])[:8]
    return {"commands_per_task": sum(delta.values()) / tasks,
            "requests_per_task": (after.reads - before.reads - SNAPSHOT_READS) / tasks,
            "redis_cpu_us_per_task": (after.cpu_s - before.cpu_s) * 1e6 / tasks,
            "top_commands_per_task": {name: calls / tasks for name, calls in top}}


def measured(client: redis.Redis, tasks: int, phase: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """Run `phase`; its value, and its wall time and Redis cost per task."""
    before = snapshot(client)
    started = time.perf_counter()
    value = phase()
    seconds = time.perf_counter() - started
    after = snapshot(client)
    return value, {"seconds": seconds, **cost(before, after, tasks)}
