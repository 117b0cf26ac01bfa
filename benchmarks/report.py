"""Turns the runners' raw results into medians, ratios against redispool and rich tables.

Pure functions of the results document (no Redis, no processes), so they are unit tested on their own.
Ratios are taken between medians of the same run and always read ">1: redispool is better": redispool's
rate / the peer's rate, and the peer's latency / redispool's latency.
"""
from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from rich.markup import escape
from rich.table import Table

from .stats import Summary, ratio, summarise

BASELINE = "redispool"


def runs(system: dict[str, Any], scenario: str, slots: int | None = None) -> list[dict[str, Any]]:
    return [r for r in system.get("runs", []) if r["scenario"] == scenario and (slots is None or r["slots"] == slots)]


def metric(system: dict[str, Any], scenario: str, key: str, slots: int | None = None) -> Summary | None:
    """Median and range over the repetitions of one number of one scenario."""
    return summarise([_dig(r, key) for r in runs(system, scenario, slots)])


def _dig(row: dict[str, Any], key: str) -> float:
    value: Any = row
    for part in key.split("."):
        value = value[part]
    return float(value)


def shape_of(system: dict[str, Any], scenario: str, slots: int | None = None) -> str:
    found = runs(system, scenario, slots)
    return found[0]["shape"] if found else "-"


def compare(ours: Summary | None, theirs: Summary | None, higher_is_better: bool) -> float | None:
    return ratio(ours.median if ours else None, theirs.median if theirs else None, higher_is_better)


def fmt(summary: Summary | None, digits: int = 0) -> str:
    """`median [min-max]` (the range only when there were several repetitions)."""
    if summary is None:
        return "-"
    text = f"{summary.median:,.{digits}f}"
    if summary.count > 1:
        text += f" [{summary.low:,.{digits}f}-{summary.high:,.{digits}f}]"
    return escape(text)


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def versus(base: dict[str, Any] | None, system: dict[str, Any], scenario: str, key: str, slots: int | None,
           higher_is_better: bool) -> str:
    """The ratio cell of `system` against redispool (empty on redispool's own row)."""
    if base is None or system is base:
        return ""
    return fmt_ratio(compare(metric(base, scenario, key, slots), metric(system, scenario, key, slots),
                             higher_is_better))


def measured(systems: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in systems if s.get("runs")]


def baseline(systems: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((s for s in systems if s["system"] == BASELINE and s.get("runs")), None)


def label(system: dict[str, Any]) -> str:
    return str(system["system"])


def config_table(systems: list[dict[str, Any]], slots: int, title: str) -> Table:
    """Throughput, round-trip latency and enqueue rate at one configuration, with Redis cost per task."""
    base = baseline(systems)
    table = Table(title=title, title_justify="left")
    for name in ("system", "shape", "throughput/s", "rp/this", "p50 ms", "p99 ms", "this/rp", "enqueue/s",
                 "rp/this", "cmds/task", "reqs/task", "CPU us/task"):
        table.add_column(name, justify="left" if name == "system" else "right")
    for system in measured(systems):
        rate = metric(system, "throughput", "rate", slots)
        p50 = metric(system, "latency", "p50_ms", slots)
        enq = metric(system, "enqueue", "rate", slots)
        table.add_row(
            label(system), shape_of(system, "throughput", slots), fmt(rate),
            versus(base, system, "throughput", "rate", slots, True),
            fmt(p50, 2), fmt(metric(system, "latency", "p99_ms", slots), 2),
            versus(base, system, "latency", "p50_ms", slots, False),
            fmt(enq),
            versus(base, system, "enqueue", "rate", slots, True),
            fmt(metric(system, "throughput", "commands_per_task", slots), 1),
            fmt(metric(system, "throughput", "requests_per_task", slots), 1),
            fmt(metric(system, "throughput", "redis_cpu_us_per_task", slots), 0))
    return table


def saturation_table(systems: list[dict[str, Any]], producers: int, slots: int) -> Table:
    base = baseline(systems)
    table = Table(title=f"saturation: {producers} producer threads, {slots} slots in total", title_justify="left")
    for name in ("system", "shape", "tasks/s", "rp/this", "min/max", "CV", "cmds/task", "reqs/task", "CPU us/task"):
        table.add_column(name, justify="left" if name == "system" else "right")
    for system in measured(systems):
        if not runs(system, "saturation"):
            continue
        table.add_row(
            label(system), shape_of(system, "saturation"), fmt(metric(system, "saturation", "rate")),
            versus(base, system, "saturation", "rate", None, True),
            fmt(metric(system, "saturation", "fairness.min_over_max"), 2), fmt(metric(system, "saturation", "fairness.cv"), 2),
            fmt(metric(system, "saturation", "commands_per_task"), 1),
            fmt(metric(system, "saturation", "requests_per_task"), 1),
            fmt(metric(system, "saturation", "redis_cpu_us_per_task"), 0))
    return table


def scaling_table(systems: list[dict[str, Any]], points: Iterable[int]) -> Table:
    points = list(points)
    table = Table(title="scaling: throughput (tasks/s) by total slots", title_justify="left")
    table.add_column("system")
    for slots in points:
        table.add_column(str(slots), justify="right")
    for system in measured(systems):
        table.add_row(label(system), *(fmt(metric(system, "throughput", "rate", s)) for s in points))
    return table


def tables(doc: dict[str, Any]) -> list[Table]:
    """Every table for a results document (see `benchmarks.compare`)."""
    plan, systems = doc["plan"], doc["systems"]
    scenarios = set(plan["scenarios"])
    out = []
    if scenarios & {"throughput", "latency", "enqueue"}:
        for concurrency in plan["concurrencies"]:
            slots = plan["processes"] * concurrency
            out.append(config_table(systems, slots, f"{plan['processes']} worker processes x {concurrency} "
                                                    f"({slots} slots): {plan['tasks']:,} tasks, window "
                                                    f"{plan['window']}, {plan['round_trips']:,} round trips"))
    if "saturation" in scenarios:
        out.append(saturation_table(systems, plan["producers"], plan["saturation_slots"]))
    if "scaling" in scenarios:
        out.append(scaling_table(systems, plan["scaling"]))
    return out


def versions(systems: list[dict[str, Any]]) -> str:
    """'versions: redispool 0.1.0, arq 0.28.0 (redis-py 5.3.1), ...; redis-py 8.2.0, Python 3.11.7'."""
    ran = [s for s in systems if s.get("version")]
    if not ran:
        return "versions: -"
    common = collections.Counter(s.get("redis_py") for s in ran).most_common(1)[0][0]
    names = [f"{s['system']} {s['version']}" + (f" (redis-py {s['redis_py']})" if s.get("redis_py") != common else "")
             for s in ran]
    return f"versions: {', '.join(names)}; redis-py {common}, Python {ran[0].get('python')}"


def footnotes(doc: dict[str, Any]) -> list[str]:
    """How to read the tables, each system's configuration notes, and what did not run and why."""
    plan = doc["plan"]
    lines = [(f"medians of {plan['reps']} repetition(s) [min-max]. rp/this (rates) and this/rp (p50 latency): >1 "
              "means redispool is better. cmds/task: Redis commands, including those run inside Lua scripts; "
              "reqs/task: client requests (socket reads); CPU us/task: redis-server used_cpu_sys + used_cpu_user. "
              "All three are for the throughput (or saturation) phase, workers' idle traffic included."),
             (f"each worker shape starts fresh (FLUSHALL, new worker processes), is ready once every worker process "
              f"has run a task, then runs {plan.get('warmup', 0):,} unmeasured warm-up tasks. Throughput: one "
              f"producer, one call at a time, at most {plan['window']} results outstanding; clock stops at the last "
              "result."),
             (f"saturation: {plan['producers']} producers, each one task at a time, {plan['saturation_tasks']:,} "
              "tasks between them; min/max and CV (coefficient of variation) of the completions per producer "
              "(min/max 1 and CV 0 = perfectly even)."),
             versions(doc["systems"])]
    for system in doc["systems"]:
        lines.extend(system.get("notes", []))
    for system in doc["systems"]:
        if system.get("status") != "ok":
            lines.append(f"NOT MEASURED {system['system']} ({system.get('status')}): {system.get('reason')}")
    return lines
