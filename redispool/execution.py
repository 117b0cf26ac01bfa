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
import logging
import os
import random
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import protocol, registry
from .errors import Retry

log = logging.getLogger("redispool.worker")

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


class ProcessRunner:
    """Runs tasks in one long-lived child process (`python -m redispool.child`), replaced after it is
    killed at a time limit or dies. A fresh interpreter, not a fork: nothing of the worker's threads,
    locks or Redis connections is inherited, and scripts without a `__main__` guard are safe."""

    def __init__(self, modules: list[str]) -> None:
        self.modules = modules
        self._proc: subprocess.Popen[bytes] | None = None
        self._request_fd = -1
        self._reply_fd = -1

    def _ensure_child(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.close()
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "redispool.child", str(request_r), str(reply_w), *self.modules],
                pass_fds=(request_r, reply_w), env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._request_fd, self._reply_fd = request_w, reply_r

    def run(self, name: str, args: list[Any], kwargs: dict[str, Any], time_limit_s: float | None) -> RunResult:
        from .child import read_frame, write_frame

        try:
            self._ensure_child()
            write_frame(self._request_fd, protocol.pack([name, args, kwargs]))
            ready, _, _ = select.select([self._reply_fd], [], [], time_limit_s)
            if not ready:
                self.close()  # SIGKILL: the only stop that works on any code
                return RunResult(protocol.TIMEOUT, time_limit_s)
            reply = read_frame(self._reply_fd)
        except OSError as exc:
            reply = None
            log.error("child process for task %s failed: %s", name, exc)
        if reply is None:
            self.close()
            return RunResult(LOST, "the child process running the task died")
        return RunResult(*protocol.unpack(reply))

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(10)
            self._proc = None
        for fd in (self._request_fd, self._reply_fd):
            if fd >= 0:
                os.close(fd)
        self._request_fd = self._reply_fd = -1
