"""TaskFuture: a concurrent.futures.Future for a task running somewhere in the pool."""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any


class TaskFuture(Future):  # type: ignore[type-arg]
    """The outcome of one submitted task. `.id` names it in Redis (see `Pool.result`).

    `result()` returns the task's return value or raises TaskError, TaskNotRegistered, SerializationError,
    or PoolClosed if the pool was closed first. `cancel()` only stops this client from waiting: a task
    that was already dispatched still runs and still frees its slot.
    """

    def __init__(self, task_id: str, task_name: str) -> None:
        super().__init__()
        self.id = task_id
        self.task_name = task_name

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
