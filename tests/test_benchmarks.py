"""The comparison harness (`python -m benchmarks.compare`): its arithmetic and tables on made-up results
(fast), and a tiny end-to-end run of redispool and Huey that must leave no process behind (slow)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from benchmarks.peers.plan import Plan, Shape, schedule
from benchmarks.peers.processes import start_time
from benchmarks.report import compare, metric, tables
from benchmarks.stats import fairness, percentile, ratio, summarise
from tests.conftest import require_redis_server


def threaded(slots: int, processes: int) -> Shape:
    count = min(processes, slots)
    return Shape(count, slots // count)


def _system(name: str, rates: list[float], p50s: list[float]) -> dict[str, object]:
    runs = [{"scenario": "throughput", "shape": "2x1", "slots": 2, "rep": i, "rate": r, "commands_per_task": 4.0,
             "requests_per_task": 2.0, "redis_cpu_us_per_task": 100.0} for i, r in enumerate(rates)]
    runs += [{"scenario": "latency", "shape": "2x1", "slots": 2, "rep": i, "p50_ms": p, "p99_ms": 2 * p}
             for i, p in enumerate(p50s)]
    runs += [{"scenario": "saturation", "shape": "2x4", "slots": 8, "rep": 0, "rate": rates[0], "commands_per_task": 4.0,
              "requests_per_task": 1.5, "redis_cpu_us_per_task": 50.0, "fairness": fairness([10, 10, 5, 15])}]
    return {"system": name, "version": "1.0", "status": "ok", "runs": runs, "notes": [], "redis_py": "8", "python": "3"}


def test_statistics_ratios_and_tables() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert summarise([3.0, 1.0, 2.0]) == summarise([1.0, 2.0, 3.0])
    assert summarise([]) is None
    spread = fairness([10, 10, 5, 15])
    assert spread["min_over_max"] == pytest.approx(1 / 3) and spread["cv"] == pytest.approx(0.3535, abs=1e-3)
    assert fairness([7, 7])["cv"] == 0.0
    # >1 always means redispool is better: rates ours/theirs, latencies theirs/ours.
    assert ratio(2000.0, 1000.0, higher_is_better=True) == 2.0
    assert ratio(1.0, 3.0, higher_is_better=False) == 3.0
    assert ratio(None, 1.0, True) is None and ratio(0.0, 1.0, True) is None

    doc: dict[str, Any] = {"plan": {**Plan.quick().__dict__, "concurrencies": [1], "scenarios": ["throughput", "latency", "saturation"]},
           "systems": [_system("redispool", [2000.0, 1900.0, 2100.0], [0.5, 0.6, 0.4]),
                       _system("celery", [1000.0, 1000.0, 1000.0], [1.5, 1.5, 1.5]),
                       {"system": "arq", "status": "unavailable", "runs": [], "reason": "no venv"}]}
    base, peer = doc["systems"][0], doc["systems"][1]
    assert metric(base, "throughput", "rate", 2).median == 2000.0  # type: ignore[union-attr,arg-type]
    assert compare(metric(base, "throughput", "rate", 2), metric(peer, "throughput", "rate", 2), True) == 2.0  # type: ignore[arg-type]
    assert compare(metric(base, "latency", "p50_ms", 2), metric(peer, "latency", "p50_ms", 2), False) == 3.0  # type: ignore[arg-type]
    out = Console(file=io.StringIO(), width=250, color_system=None)
    for table in tables(doc):
        out.print(table)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "2,000 [1,900-2,100]" in text and "2.00x" in text and "3.00x" in text and "0.33" in text
    assert "arq" not in text  # not measured: only in the footnotes


def test_schedule_groups_scenarios_by_worker_shape() -> None:
    plan = Plan()
    shapes = dict(schedule(plan, threaded))
    assert shapes[Shape(2, 1)] == ["throughput", "latency", "enqueue"]
    assert shapes[Shape(2, 8)] == ["throughput", "latency", "enqueue"]
    assert shapes[Shape(2, 4)] == ["throughput", "saturation"]
    assert shapes[Shape(1, 1)] == shapes[Shape(2, 2)] == ["throughput"]
    assert [s.slots for s, _ in schedule(plan, threaded)] == [1, 2, 4, 8, 16]
    one_per_process = dict(schedule(plan, lambda slots, _: Shape(slots, 1)))
    assert Shape(16, 1) in one_per_process and Shape(8, 1) in one_per_process


@pytest.mark.slow
def test_compare_runs_redispool_and_huey_end_to_end(tmp_path: Path) -> None:
    require_redis_server()
    pytest.importorskip("huey")
    from benchmarks.compare import main

    code = main(["--quick", "--systems", "redispool,huey", "--scenarios", "throughput,latency,enqueue,saturation",
                 "--tasks", "200", "--round-trips", "20", "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads((tmp_path / "compare.json").read_text())
    by_name = {s["system"]: s for s in doc["systems"]}
    for name in ("redispool", "huey"):
        system = by_name[name]
        assert system["status"] == "ok", system.get("reason")
        assert {r["scenario"] for r in system["runs"]} == {"throughput", "latency", "enqueue", "saturation"}
        assert all(r["commands_per_task"] > 0 for r in system["runs"])
        assert system["worker_pids"]
        assert [pid for pid, started in system["worker_pids"] if start_time(pid) == started] == []
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert "huey" in (tmp_path / "compare.txt").read_text()
