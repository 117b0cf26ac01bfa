"""TaskFuture: a concurrent.futures.Future for a task running somewhere in the pool."""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, ContextManager, Protocol


class ReplyReader(Protocol):
    def waiting_for(self, done: Callable[[], bool], timeout: float | None) -> ContextManager[float | None]: ...


class TaskFuture(Future):  # type: ignore[type-arg]
    """The outcome of one submitted task. `.id` names it in Redis (see `Pool.result`).

    `result()` returns the task's return value or raises TaskError, TaskNotRegistered, SerializationError,
    or PoolClosed if the pool was closed first. `cancel()` only stops this client from waiting: a task
    that was already dispatched still runs and still frees its slot.
    """

    def __init__(self, task_id: str, task_name: str, reader: ReplyReader | None = None) -> None:
        super().__init__()
        self.id = task_id
        self.task_name = task_name
        self._reader = reader

    def result(self, timeout: float | None = None) -> Any:
        """As Future.result; while no other thread reads this client's replies, the caller reads them
        itself (no wake-up hand-off from the listener thread)."""
        if self._reader is None or self.done():
            return super().result(timeout)
        with self._reader.waiting_for(self.done, timeout) as remaining:
            return super().result(remaining)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._reader is None or self.done():
            return super().exception(timeout)
        with self._reader.waiting_for(self.done, timeout) as remaining:
            return super().exception(remaining)

    def __repr__(self) -> str:
        return f"<TaskFuture {self.task_name} id={self.id} state={self._state}>"

    def _resolve(self, value: Any, error: BaseException | None) -> None:
        """Set once; later deliveries (none are expected) are ignored rather than raising."""
        if self.done():
            return
        try:
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(value)
        except Exception:  # InvalidStateError: cancelled or set concurrently
            pass
