"""The reply listener: reads a client's reply list and settles its futures.

Workers' release scripts push outcome frames, and grant frames for parked tasks, to the submitting
client's own reply list; they are taken in batches (BLMPOP with a count), so there is no per-task
blocking call and no polling. Whoever reads holds the read token: a caller blocked in `result()` reads
on its own thread when nobody else does (its wake-up then needs no hand-off between threads, which costs
more than the read itself), and the background thread reads when no caller has wanted to for
FOREGROUND_GRACE_S, or at once when a leaving reader hands over to callers still waiting.

Every SWEEP_S, and at once after Redis comes back from an outage, the background thread asks Redis
about futures that have waited a while: one whose task Redis no longer knows (a restart without
persistence) fails with TaskLost instead of hanging.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable, Iterator

from . import protocol
from .backend import BLOCK_S, DONE_STATE, MISSING_STATE, Backend
from .errors import BackendError, PoolClosed, SerializationError, TaskLost
from .future import TaskFuture

log = logging.getLogger("redispool")

SWEEP_S = 5.0
SWEEP_CHUNK = 1000
FOREGROUND_GRACE_S = 0.005


class ReplyListener:
    """Owns the table of pending futures and parked-task grant events of one client."""

    BATCH = 512

    def __init__(self, backend: Backend, reply_key: str) -> None:
        self.backend = backend
        self.reply_key = reply_key
        self._lock = threading.Lock()
        self._pending: dict[str, TaskFuture] = {}
        self._confirmed: dict[str, float] = {}  # task id -> when Redis acknowledged it (monotonic)
        self._grants: dict[str, threading.Event] = {}  # parked submitters waiting for their grant
        self._early_grants: set[str] = set()  # grants that arrived before their submitter asked to wait
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = time.monotonic()
        self._reading = threading.Lock()  # the read token: its holder pops the reply list
        self._last_caller = 0.0  # when a caller last read or wanted to (monotonic)
        self._followers = 0  # callers waiting while another thread reads
        self._handover = threading.Event()  # a leaving reader asks the background thread to take over

    def expect(self, future: TaskFuture) -> None:
        """Register a future before its task reaches Redis, so no frame for it is missed."""
        self._start()
        with self._lock:
            self._pending[future.id] = future

    def confirm(self, task_id: str, granted: bool) -> threading.Event | None:
        """Redis has the task: from now on a sweep may find it lost. For a parked task (not granted) returns
        the event its grant sets (already set if the grant frame came first)."""
        event = None
        with self._lock:
            if task_id in self._pending:
                self._confirmed[task_id] = time.monotonic()
            if granted:
                self._grants.pop(task_id, None)
            else:
                event = threading.Event()
                if task_id in self._pending and task_id not in self._early_grants and not self._closed.is_set():
                    self._grants[task_id] = event
                else:  # its grant (or even its outcome) was handled before the submitter got here
                    self._early_grants.discard(task_id)
                    event.set()
        return event

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._pending.pop(task_id, None)
            self._confirmed.pop(task_id, None)
            self._grants.pop(task_id, None)
            self._early_grants.discard(task_id)

    def pending(self, task_id: str) -> TaskFuture | None:
        with self._lock:
            return self._pending.get(task_id)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(target=self._loop, name="redispool-replies", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        for frames in self.backend.batches(self.reply_key, self.BATCH, self._closed, on_recover=self.sweep,
                                           turn=self._background_turn):
            self.handle(frames)
            if time.monotonic() - self._last_sweep >= SWEEP_S:
                self.sweep(min_age_s=SWEEP_S)

    # -- who reads ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def waiting_for(self, done: Callable[[], bool], timeout: float | None) -> Iterator[float | None]:
        """Around a caller's wait (for a future's outcome, or a parked task's grant): when no other thread
        reads, read on this thread until done() or the timeout ends; else wait for the reader. Yields the
        time left to wait."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        self._last_caller = time.monotonic()
        with self._lock:  # counted before trying the token, so a leaving reader cannot miss this caller
            self._followers += 1
        if self._reading.acquire(blocking=False):
            with self._lock:
                self._followers -= 1
            try:
                self._read_until(done, deadline)
            finally:
                self._give_back()
            yield left()
            return
        try:
            yield left()
        finally:
            with self._lock:
                self._followers -= 1

    @contextlib.contextmanager
    def reading_alongside(self) -> Iterator[int]:
        """Around a submitter's acquire call: when no other thread reads, the call may take up to BATCH
        waiting reply frames with its answer (yields how many, else 0); hand them to `handle` before
        leaving. A submitting thread counts as a caller, so while it keeps submitting the background thread
        stays out and results ride back on the submits."""
        self._last_caller = time.monotonic()
        if not self._reading.acquire(blocking=False):
            yield 0
            return
        try:
            yield self.BATCH
        finally:
            self._give_back()

    def handle(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._handle(frame)

    def _give_back(self) -> None:
        """Release the read token; if callers wait behind it, the background thread takes over at once."""
        self._last_caller = time.monotonic()
        self._reading.release()
        if self._followers:
            self._handover.set()

    def _read_until(self, done: Callable[[], bool], deadline: float | None) -> None:
        self._start()  # the background thread still sweeps, and reads once this caller is gone
        while not done() and not self._closed.is_set():
            block_s = BLOCK_S if deadline is None else min(BLOCK_S, deadline - time.monotonic())
            if block_s <= 0:
                return
            try:
                frames = self.backend.pop_many(self.reply_key, self.BATCH, max(block_s, 0.001))
            except BackendError:
                return  # the background thread retries, recovers and sweeps
            self.handle(frames)

    @contextlib.contextmanager
    def _background_turn(self) -> Iterator[bool]:
        """True while the background thread may pop (it then holds the read token)."""
        quiet_s = FOREGROUND_GRACE_S - (time.monotonic() - self._last_caller)
        if quiet_s > 0 and not self._handover.is_set():
            self._handover.wait(quiet_s)
            yield False
            return
        self._handover.clear()
        ours = self._reading.acquire(timeout=FOREGROUND_GRACE_S)
        try:
            yield ours
        finally:
            if ours:
                self._reading.release()

    def _settle(self, task_id: str, value: object, error: BaseException | None) -> None:
        with self._lock:
            future = self._pending.pop(task_id, None)
            self._confirmed.pop(task_id, None)
            self._early_grants.discard(task_id)
            event = self._grants.pop(task_id, None)
        if event is not None:
            event.set()
        if future is not None:
            future._resolve(value, error)

    def _handle(self, frame: bytes) -> None:
        kind = frame[:1]
        if kind == b"G":
            task_id = frame[1:].decode("ascii", "replace")
            with self._lock:
                event = self._grants.pop(task_id, None)
                if event is None and task_id in self._pending:
                    self._early_grants.add(task_id)
            if event is not None:
                event.set()
        elif kind in (b"R", b"E"):
            try:
                task_id, value, error = protocol.parse_outcome(frame)
            except SerializationError as exc:
                log.error("reply listener: dropped a malformed outcome frame: %s", exc)
                return
            self._settle(task_id, value, error)

    def sweep(self, min_age_s: float = 0.0) -> int:
        """Check the confirmed futures older than min_age_s against Redis: fail with TaskLost those whose task
        Redis no longer knows, and settle from the result key those whose task ended but whose outcome frame
        never arrived (popped in a reply lost with a dropped connection). Tasks whose submitter still waits
        for a grant are skipped: that submitter parks them again. Returns how many were lost."""
        self._last_sweep = time.monotonic()
        cutoff = time.monotonic() - min_age_s
        with self._lock:
            ids = [i for i, t in self._confirmed.items() if t <= cutoff and i not in self._grants]
        lost = 0
        for start in range(0, len(ids), SWEEP_CHUNK):
            chunk = ids[start:start + SWEEP_CHUNK]
            try:
                states = self.backend.task_states(chunk)
            except BackendError as exc:
                log.warning("reply listener: sweep failed: %s", exc)
                return lost
            for task_id, state in states.items():
                if state == MISSING_STATE:
                    lost += 1
                    self._settle(task_id, None, TaskLost(
                        f"Redis no longer knows task {task_id} (restarted or failed over without its data); "
                        "it may or may not have run", task_id))
                elif state == DONE_STATE:
                    self._settle_from_result_key(task_id)
        if lost:
            log.warning("reply listener: %d task(s) lost by Redis", lost)
        return lost

    def _settle_from_result_key(self, task_id: str) -> None:
        try:
            frame = self.backend.read_result(task_id, 0)
        except BackendError as exc:
            log.warning("reply listener: reading the result of task %s failed: %s", task_id, exc)
            return
        if frame is not None:
            self._handle(frame)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (woken at once by a wake frame) and fail what is pending with PoolClosed."""
        self._closed.set()
        thread = self._thread
        if thread is not None:
            try:
                self.backend.wake(self.reply_key, 1)
            except BackendError:
                pass
            thread.join(timeout_s)
        with self._lock:
            pending, self._pending = self._pending, {}
            grants, self._grants = self._grants, {}
            self._confirmed.clear()
            self._early_grants.clear()
        for event in grants.values():
            event.set()
        for future in pending.values():
            future._resolve(None, PoolClosed(f"pool closed before task {future.id} finished"))
        try:
            self.backend.delete(self.reply_key)
        except BackendError:
            pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()
