"""What one comparison measures (sizes, shapes, scenarios), and which worker shape serves which scenario.

The plan travels from `compare` to each system's runner as JSON, so every system gets the same numbers.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

SCENARIOS = ("throughput", "latency", "enqueue", "saturation", "scaling")


@dataclass(frozen=True)
class Shape:
    """Worker OS processes x in-process concurrency (threads or coroutines) of each."""

    processes: int
    concurrency: int

    @property
    def slots(self) -> int:
        return self.processes * self.concurrency

    def __str__(self) -> str:
        return f"{self.processes}x{self.concurrency}"


@dataclass
class Plan:
    tasks: int = 20_000              # throughput, enqueue and each scaling point
    round_trips: int = 2_000         # latency: one task at a time
    window: int = 128                # outstanding results the throughput producer keeps
    warmup: int = 500                # unmeasured throughput tasks after the workers are ready, per shape
    saturation_tasks: int = 10_000   # shared by all producer threads
    producers: int = 64
    saturation_slots: int = 8
    processes: int = 2
    concurrencies: tuple[int, ...] = (1, 8)
    scaling: tuple[int, ...] = (1, 2, 4, 8, 16)
    reps: int = 3
    scenarios: tuple[str, ...] = SCENARIOS
    result_timeout_s: float = 120.0
    ready_timeout_s: float = 90.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(tasks=2_000, round_trips=200, saturation_tasks=2_000, reps=1, warmup=200)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        for key in ("concurrencies", "scaling", "scenarios"):
            raw[key] = tuple(raw[key])
        return cls(**raw)


def schedule(plan: Plan, shape_for: Callable[[int, int], Shape]) -> list[tuple[Shape, list[str]]]:
    """Group the scenarios by worker shape, so workers start once per shape; smallest shape first.

    The main configurations (processes x each concurrency) run throughput, latency and enqueue; the
    saturation shape has `saturation_slots` in total; each scaling point is a throughput run, shared with
    a main configuration when the slot counts coincide.
    """
    jobs: dict[Shape, list[str]] = {}

    def add(shape: Shape, job: str) -> None:
        todo = jobs.setdefault(shape, [])
        if job not in todo:
            todo.append(job)

    for concurrency in plan.concurrencies:
        shape = shape_for(plan.processes * concurrency, plan.processes)
        for job in ("throughput", "latency", "enqueue"):
            if job in plan.scenarios:
                add(shape, job)
    if "saturation" in plan.scenarios:
        add(shape_for(plan.saturation_slots, plan.processes), "saturation")
    if "scaling" in plan.scenarios:
        for slots in plan.scaling:
            add(shape_for(slots, plan.processes), "throughput")
    order = ("throughput", "latency", "enqueue", "saturation")
    return sorted(((s, sorted(j, key=order.index)) for s, j in jobs.items()), key=lambda item: item[0].slots)
