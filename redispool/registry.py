"""The task registry: the only place a task name becomes a callable.

`@task` registers a function under a name (default `module.qualname`) with its options; workers look
tasks up here and publish the names and options to Redis so submitters need not import task code.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, overload

from .errors import RedisPoolError
from .options import TaskOptions

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


_TASKS: dict[str, TaskSpec] = {}


@overload
def task(fn: F) -> F: ...
@overload
def task(fn: None = None, *, name: str | None = None, **options: Any) -> Callable[[F], F]: ...


def task(fn: Callable[..., Any] | None = None, *, name: str | None = None, **options: Any) -> Any:
    """Register a function as a task: `@task` or `@task(name="resize")`.

    Options (see TaskOptions: time_limit, retries, max_attempts, on_worker_lost, retry_backoff_s,
    retry_backoff_max_s) are validated here and published to Redis by the workers that serve the task.
    Registering a different function under a name already taken raises RedisPoolError.
    """
    TaskOptions.check(options)
    def register(f: F) -> F:
        task_name = name or f"{f.__module__}.{f.__qualname__}"
        if not isinstance(task_name, str) or "|" in task_name:
            raise RedisPoolError(f"invalid task name {task_name!r}")
        old = _TASKS.get(task_name)
        if old is not None and _origin(old.fn) != _origin(f):
            raise RedisPoolError(f"task name {task_name!r} is already registered to {_origin(old.fn)}")
        _TASKS[task_name] = TaskSpec(task_name, f, dict(options))
        f.task_name = task_name  # type: ignore[attr-defined]
        return f

    return register(fn) if fn is not None else register


def _origin(f: Callable[..., Any]) -> str:
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"


def task_name_of(task_ref: str | Callable[..., Any]) -> str:
    """Submitters may name a task or pass the decorated function itself."""
    if isinstance(task_ref, str):
        return task_ref
    name = getattr(task_ref, "task_name", None)
    if not isinstance(name, str):
        raise RedisPoolError(f"{task_ref!r} is neither a task name nor a function decorated with @task")
    return name


def lookup(name: str) -> TaskSpec | None:
    return _TASKS.get(name)


def registered() -> dict[str, TaskSpec]:
    return dict(_TASKS)


def import_modules(modules: tuple[str, ...] | list[str]) -> None:
    """Import the modules whose `@task` decorators fill the registry (a worker's `--import`)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise RedisPoolError(f"cannot import task module {module!r}: {exc}") from exc
