"""The comparison as one PNG: throughput, latency, enqueue rate, saturation, scaling and Redis CPU per task."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import measured, metric


def _bars(ax: Any, systems: list[dict[str, Any]], series: list[tuple[str, str, str, int | None]], ylabel: str,
          title: str, log: bool = False) -> None:
    """Grouped bars: one group per system, one bar per (legend, scenario, key, slots), min-max as error bars."""
    import numpy as np
    width = 0.8 / max(1, len(series))
    x = np.arange(len(systems))
    for i, (legend, scenario, key, slots) in enumerate(series):
        values, low, high = [], [], []
        for system in systems:
            s = metric(system, scenario, key, slots)
            values.append(s.median if s else 0.0)
            low.append(s.median - s.low if s else 0.0)
            high.append(s.high - s.median if s else 0.0)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, yerr=[low, high], label=legend, capsize=2)
    ax.set_xticks(x, [s["system"] for s in systems], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        from matplotlib.ticker import FormatStrFormatter
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def write_chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan, systems = doc["plan"], measured(doc["systems"])
    configs = [(f"{plan['processes']}x{c}", plan["processes"] * c) for c in plan["concurrencies"]]
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    _bars(axes[0][0], systems, [(name, "throughput", "rate", slots) for name, slots in configs],
          "tasks/s", f"throughput ({plan['tasks']:,} no-ops, window {plan['window']})")
    _bars(axes[0][1], systems, [(f"{q} {name}", "latency", f"{q}_ms", slots) for name, slots in configs
                                for q in ("p50", "p99")], "ms (log)", "round-trip latency, one at a time", log=True)
    _bars(axes[0][2], systems, [(name, "enqueue", "rate", slots) for name, slots in configs],
          "tasks/s", "enqueue rate (results not awaited)")
    _bars(axes[1][0], systems, [(f"{plan['saturation_slots']} slots", "saturation", "rate", None)],
          "tasks/s", f"saturation: {plan['producers']} producers")
    ax = axes[1][1]
    for system in systems:
        points = [(s, m.median) for s in plan["scaling"] if (m := metric(system, "throughput", "rate", s))]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=system["system"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(plan["scaling"], [str(s) for s in plan["scaling"]])
    ax.set_xlabel("total slots")
    ax.set_ylabel("tasks/s")
    ax.set_title("scaling", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _bars(axes[1][2], systems, [(name, "throughput", "redis_cpu_us_per_task", slots) for name, slots in configs],
          "us per task", "Redis server CPU per task (throughput)")
    fig.suptitle(f"redispool vs peers on one private redis-server ({doc['machine']})", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
