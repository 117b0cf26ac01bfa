"""Running one task: in the worker's thread (default) or in a child process that can be killed.

Both runners return a RunResult, so the worker treats them alike. Time limits:
- "thread": a watchdog raises TimeLimitExceeded (a BaseException) inside the task's thread at the limit.
  That stops Python code at its next bytecode, but not a call blocked in C (a socket read, time.sleep in
  one long call, a NumPy kernel): such a task keeps its slot until the call returns, and is then reported
  as TaskTimeout. Capacity stays exact either way.
- "process": the task runs in a long-lived child process per slot, killed (SIGKILL) at the limit and
  replaced; a child that dies mid-task is reported as a lost run, like a dead worker.
"""
from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import random
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from . import protocol, registry
from .errors import Retry

LOST = -1  # RunResult status: the run died with its process
DEFAULT_RETRY_LIMIT = 3  # retries a `Retry` request gets when the task declares none


@dataclass(frozen=True)
class RunResult:
    status: int          # protocol.OK, ERROR, NOT_REGISTERED, BAD_MESSAGE, TIMEOUT, or LOST
    value: Any           # the return value, error_value(exc), the task name, or the time limit
    retry_requested: bool = False       # the task raised Retry...
    retry_delay_s: float | None = None  # ...with this delay (None: the task's backoff)
    retry_limit: int | None = None      # ...and this many retries at most (None: the task's `retries`)


class TimeLimitExceeded(BaseException):
    """Injected into a task's thread at its time limit; a BaseException so `except Exception` won't eat it."""


def backoff_s(retries_done: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped at max_s."""
    delay = min(max_s, base_s * (2 ** retries_done))
    return delay / 2 + random.uniform(0, delay / 2)


def call_task(name: str, args: list[Any], kwargs: dict[str, Any]) -> RunResult:
    """Look the task up and call it, turning every outcome into a RunResult."""
    spec = registry.lookup(name)
    if spec is None:
        return RunResult(protocol.NOT_REGISTERED, name)
    try:
        return RunResult(protocol.OK, spec.fn(*args, **kwargs))
    except Retry as request:
        return RunResult(protocol.ERROR, protocol.error_value(request), True, request.delay, request.max_retries)
    except TimeLimitExceeded:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure of user code goes back to its submitter
        return RunResult(protocol.ERROR, protocol.error_value(exc))


class Watchdog:
    """Raises TimeLimitExceeded in threads whose task passed its deadline (thread execution)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[int, float] = {}
        self._fired: set[int] = set()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="redispool-watchdog", daemon=True)
        self._thread.start()

    def arm(self, time_limit_s: float) -> None:
        with self._lock:
            self._deadlines[threading.get_ident()] = time.monotonic() + time_limit_s
        self._wake.set()

    def disarm(self) -> bool:
        """Stop watching this thread; True if the limit fired (a pending injection is cancelled)."""
        ident = threading.get_ident()
        with self._lock:
            self._deadlines.pop(ident, None)
            fired = ident in self._fired
            if fired:
                self._fired.discard(ident)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        return fired

    def _loop(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                for ident, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[ident]
                        self._fired.add(ident)
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                                   ctypes.py_object(TimeLimitExceeded))
                wait_s = min((d - now for d in self._deadlines.values()), default=1.0)
            self._wake.wait(max(0.001, min(wait_s, 1.0)))
            self._wake.clear()


class ThreadRunner:
    """Runs tasks in the calling worker thread."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any], time_limit_s: float | None) -> RunResult:
        if time_limit_s is None:
            return call_task(name, args, kwargs)
        try:
            self.watchdog.arm(time_limit_s)
            try:
                result = call_task(name, args, kwargs)
            finally:
                fired = self.watchdog.disarm()
        except TimeLimitExceeded:
            self.watchdog.disarm()  # the injection may have landed inside disarm itself: clear its state
            fired = True
        return RunResult(protocol.TIMEOUT, time_limit_s) if fired else result

    def close(self) -> None:
        pass


def _child_main(conn: Connection, modules: list[str]) -> None:
    """A child process: import the task modules, then run tasks sent as msgpack until the pipe closes."""
    for module in modules:
        importlib.import_module(module)
    while True:
        try:
            request = protocol.unpack(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the worker went away
        name, args, kwargs = request
        result = call_task(name, args, kwargs)
        try:
            reply = protocol.pack([result.status, result.value, result.retry_requested, result.retry_delay_s,
                                   result.retry_limit])
        except Exception as exc:  # an unencodable return value
            reply = protocol.pack([protocol.BAD_MESSAGE, f"result cannot be encoded: {exc}", False, None, None])
        conn.send_bytes(reply)


class ProcessRunner:
    """Runs tasks in one long-lived child process, replaced after it is killed or dies."""

    _context = multiprocessing.get_context("spawn")

    def __init__(self, modules: list[str]) -> None:
        self.modules = modules
        self._process: Any = None
        self._conn: Connection | None = None

    def _ensure_child(self) -> Connection:
        if self._process is None or not self._process.is_alive():
            self.close()
            parent, child = self._context.Pipe()
            self._process = self._context.Process(target=_child_main, args=(child, self.modules), daemon=True,
                                                  name="redispool-child")
            self._process.start()
            child.close()
            self._conn = parent
        assert self._conn is not None
        return self._conn

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any], time_limit_s: float | None) -> RunResult:
        conn = self._ensure_child()
        try:
            conn.send_bytes(protocol.pack([name, args, kwargs]))
            if not conn.poll(time_limit_s):
                self.close()  # SIGKILL: the only stop that works on any code
                return RunResult(protocol.TIMEOUT, time_limit_s)
            reply = protocol.unpack(conn.recv_bytes())
        except (EOFError, OSError):
            self.close()
            return RunResult(LOST, "the child process running the task died")
        return RunResult(*reply)

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
