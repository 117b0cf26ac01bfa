"""Worker OS processes for one shape: started in sessions of their own, stopped by PID, none left behind.

Some peers fork children (Dramatiq's worker processes, RQ's work horses), so stopping also finds every
descendant through /proc and kills what a SIGTERM did not end. Each PID is appended to a pid file first,
so the parent harness can sweep them even if the runner itself dies.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .base import ROOT


def descendants(pids: set[int]) -> set[int]:
    """Every live process below `pids` (children, grandchildren, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie.

    A PID is only ever killed when its start time still matches the one recorded, so a recycled PID is safe."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def kill_recorded(records: dict[int, int]) -> None:
    """SIGKILL each recorded (pid -> start time) process that is still that same process."""
    for pid, started in sorted(records.items()):
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def read_pid_file(path: Path) -> dict[int, int]:
    if not path.exists():
        return {}
    return {int(pid): int(started) for pid, started in (line.split() for line in path.read_text().splitlines() if line)}


class WorkerProcesses:
    def __init__(self, commands: list[list[str]], env: dict[str, str], pid_file: Path | None = None) -> None:
        self.commands = commands
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.pid_file = pid_file
        self.log_dir = Path(tempfile.mkdtemp(prefix="redispool-bench-workers-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.seen: dict[int, int] = {}  # pid -> start time

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _record(self, pids: set[int]) -> None:
        new = {pid: started for pid in pids - self.seen.keys() if (started := start_time(pid)) is not None}
        self.seen.update(new)
        if self.pid_file is not None and new:
            with open(self.pid_file, "a") as f:
                f.writelines(f"{pid} {started}\n" for pid, started in sorted(new.items()))

    def start(self) -> WorkerProcesses:
        for index, command in enumerate(self.commands):
            with open(self.log_dir / f"worker-{index}.log", "wb") as log:  # a file, never an unread pipe
                proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(proc)
            self._record({proc.pid})
        return self

    def check_running(self) -> None:
        """Raise with the log's tail when a worker has already exited (e.g. an import error)."""
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RuntimeError(f"worker {index} (pid {proc.pid}) exited with {proc.returncode}:\n{self.log_tail(index)}")

    def log_tail(self, index: int, lines: int = 15) -> str:
        text = (self.log_dir / f"worker-{index}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM each worker by PID, wait up to `grace_s`, then SIGKILL it and every descendant left."""
        self._record(descendants(set(self.pids)))
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self._record(descendants(set(self.pids)))
        kill_recorded(self.seen)
        for proc in self.procs:
            proc.wait(10)
        deadline = time.monotonic() + 10
        while self.left_running() and time.monotonic() < deadline:
            time.sleep(0.05)  # grandchildren are reaped by init, not by us

    def left_running(self) -> list[int]:
        return [pid for pid, started in self.seen.items() if start_time(pid) == started]

    def cleanup(self) -> None:
        for log in self.log_dir.glob("*.log"):
            log.unlink()
        self.log_dir.rmdir()

    def __enter__(self) -> WorkerProcesses:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
