"""redispool side by side with Celery, RQ, Dramatiq, Huey, arq and SAQ, on one private Redis.

`python -m benchmarks.compare [--quick] [--systems a,b,...] [--scenarios ...] [--reps 3] [--out DIR]`

Starts a redis-server on a free port, then runs each system in turn on it (FLUSHALL before each), in a
runner process of its own (arq's from its own virtualenv), with the same worker parallelism: 2 worker OS
processes with in-process concurrency 1, then 8. Scenarios: throughput (one producer, one call at a time,
a bounded window of outstanding results), round-trip latency, enqueue rate, saturation (64 producers on 8
slots) and scaling (1-16 slots). Prints tables of medians with ratios against redispool and writes
compare.json, compare.txt and compare.png to --out. Peers come from `pip install -e '.[bench]'`.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis
from rich.console import Console

from redispool.embedded import RedisServer

from .chart import write_chart
from .peers import PEERS, resolve
from .peers.base import ROOT
from .peers.plan import SCENARIOS, Plan
from .peers.processes import kill_recorded, read_pid_file, start_time
from .report import footnotes, tables
from .venv import CACHE, ensure_venv

DEFAULT_OUT = ROOT / "benchmarks" / "results"


def make_plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick() if args.quick else Plan()
    for field in ("reps", "tasks", "round_trips", "window"):
        if getattr(args, field) is not None:
            setattr(plan, field, getattr(args, field))
    if args.tasks is not None:
        plan.saturation_tasks = args.tasks
    plan.scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    unknown = set(plan.scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    return plan


def run_system(name: str, url: str, plan: Plan, work: Path, timeout_s: float, console: Console) -> dict[str, Any]:
    """One system through its runner process; whatever worker it leaves behind is killed by PID."""
    spec = PEERS[name]
    python = Path(sys.executable)
    if spec.venv is not None:
        try:
            console.print(f"[dim]{name}: preparing its virtualenv ({', '.join(spec.requirements)})[/]")
            python = ensure_venv(spec.venv, spec.requirements, CACHE / f"{name}-venv.log")
        except (OSError, subprocess.SubprocessError) as exc:
            return {"system": name, "status": "unavailable", "runs": [],
                    "reason": f"could not build its virtualenv: {exc} (log: {CACHE / f'{name}-venv.log'})"}
    pid_file = work / f"{name}.pids"
    cmd = [str(python), "-m", "benchmarks.peers.runner", "--peer", name, "--url", url, "--plan", plan.to_json(),
           "--pid-file", str(pid_file)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the runner stops its workers on SIGTERM
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        return {"system": name, "status": "failed", "runs": [], "reason": f"did not finish in {timeout_s:g} s"}
    finally:
        recorded = read_pid_file(pid_file)
        leftover = [pid for pid, started in recorded.items() if start_time(pid) == started]
        kill_recorded(recorded)
        if leftover:
            console.print(f"[red]{name}: killed {len(leftover)} worker processes its runner left: {leftover}[/]")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"system": name, "status": "failed", "runs": [], "reason": f"runner exited {proc.returncode}"}
    return json.loads(lines[-1])


def render(doc: dict[str, Any], console: Console) -> None:
    for table in tables(doc):
        console.print(table)
    for line in footnotes(doc):
        console.print(f"- {line}", style="yellow" if line.startswith("NOT MEASURED") else "dim", markup=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition: a few minutes for all")
    parser.add_argument("--systems", default="all", help=f"comma-separated: {', '.join(PEERS)}, rq (both), all")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--reps", type=int, help="repetitions of each measurement (default 3, quick 1)")
    parser.add_argument("--tasks", type=int, help="tasks per throughput, enqueue, saturation and scaling run")
    parser.add_argument("--round-trips", type=int, help="round trips in the latency scenario")
    parser.add_argument("--window", type=int, help="results outstanding in the throughput scenario (default 128)")
    parser.add_argument("--system-timeout", type=float, help="seconds one system may take (default 900 quick, 10800)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    plan = make_plan(args)
    try:
        systems = resolve(args.systems)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    timeout_s = args.system_timeout or (900.0 if args.quick else 10800.0)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="redispool-compare-"))
    results = []
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        version = client.info("server")["redis_version"]
        console.print(f"redis-server {version} at {server.url}; systems: {', '.join(systems)}; "
                      f"plan: {json.dumps(asdict(plan))}")
        for name in systems:
            client.flushall()
            console.rule(name)
            results.append(run_system(name, server.url, plan, work, timeout_s, console))
        client.close()
    shutil.rmtree(work, ignore_errors=True)
    doc = {"created": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, redis-server {version}",
           "plan": asdict(plan), "systems": results}
    (args.out / "compare.json").write_text(json.dumps(doc, indent=1))
    render(doc, console)
    text = Console(file=io.StringIO(), width=200, color_system=None)
    render(doc, text)
    (args.out / "compare.txt").write_text(text.file.getvalue())  # type: ignore[attr-defined]
    try:
        write_chart(doc, args.out / "compare.png")
    except ImportError as exc:
        console.print(f"[yellow]no chart: {exc} (pip install -e '.[bench]')[/]")
    console.print(f"wrote {args.out / 'compare.json'}, compare.txt, compare.png")
    return 1 if any(r.get("status") == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
