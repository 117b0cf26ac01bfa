"""Per-task options: declared with `@task(...)`, overridable per call in `submit_with(...)`.

Workers publish each task's declared options to Redis, so the reaper applies `max_attempts` and
`on_worker_lost` without importing task code; per-call overrides travel in the message header.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import RedisPoolError

ON_WORKER_LOST = ("requeue", "fail")
MAX_HEADER_CHARS = 4096  # per-call options are a handful of numbers and words


@dataclass(frozen=True)
class TaskOptions:
    """time_limit: seconds a run may take (None: no limit); see README for thread vs process execution.
    retries: re-runs after the task raises (exponential backoff with jitter: retry_backoff_s doubling up
    to retry_backoff_max_s). max_attempts: dispatches lost to dead workers before the task is
    dead-lettered (default 3). on_worker_lost: "requeue" (at-least-once) or "fail" (at-most-once)."""

    time_limit: float | None = None
    retries: int = 0
    max_attempts: int = 3
    on_worker_lost: str = "requeue"
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.time_limit is not None and not (_number(self.time_limit) and self.time_limit > 0):
            raise RedisPoolError(f"time_limit must be seconds > 0 or None, not {self.time_limit!r}")
        if not (_integer(self.retries) and self.retries >= 0):
            raise RedisPoolError(f"retries must be an int >= 0, not {self.retries!r}")
        if not (_integer(self.max_attempts) and self.max_attempts >= 1):
            raise RedisPoolError(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if self.on_worker_lost not in ON_WORKER_LOST:
            raise RedisPoolError(f"on_worker_lost must be one of {ON_WORKER_LOST}, not {self.on_worker_lost!r}")
        for name in ("retry_backoff_s", "retry_backoff_max_s"):
            value = getattr(self, name)
            if not (_number(value) and value >= 0):
                raise RedisPoolError(f"{name} must be seconds >= 0, not {value!r}")

    @classmethod
    def names(cls) -> frozenset[str]:
        return _NAMES

    @classmethod
    def check(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Validate a partial set of options (unknown names refused); returns them unchanged."""
        if not options:
            return options
        unknown = set(options) - cls.names()
        if unknown:
            raise RedisPoolError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        cls(**options)
        return options

    @classmethod
    def merged(cls, *layers: dict[str, Any] | None) -> "TaskOptions":
        """Defaults, overridden by each layer in turn (decorator options, then per-call options)."""
        values: dict[str, Any] = {}
        for layer in layers:
            if layer:
                values.update({k: v for k, v in layer.items() if k in cls.names()})
        return cls(**values)

    @classmethod
    @functools.lru_cache(maxsize=1024)
    def _merged_cached(cls, declared: tuple[tuple[str, Any], ...], per_call: tuple[tuple[str, Any], ...]
                       ) -> "TaskOptions":
        return cls.merged(dict(declared), dict(per_call))

    @classmethod
    def for_run(cls, declared: dict[str, Any] | None, per_call: dict[str, Any] | None) -> "TaskOptions":
        """`merged(declared, per_call)`, cached: a worker resolves the same few combinations per task."""
        try:
            return cls._merged_cached(tuple(sorted((declared or {}).items())), tuple(sorted((per_call or {}).items())))
        except TypeError:  # an unhashable (hostile) value: resolve without the cache
            return cls.merged(declared, per_call)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_NAMES = frozenset(f.name for f in fields(TaskOptions))


def header_json(options: dict[str, Any] | None) -> str:
    """Per-call overrides as compact JSON for the message header ("" when there are none)."""
    return json.dumps(options, separators=(",", ":"), sort_keys=True) if options else ""


def parse_header_json(text: str) -> dict[str, Any]:
    """Per-call options from a message header; anything but a JSON object is refused (RedisPoolError)."""
    if not text:
        return {}
    if len(text) > MAX_HEADER_CHARS:
        raise RedisPoolError(f"options header of {len(text)} characters is over {MAX_HEADER_CHARS}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RedisPoolError(f"options header is not JSON: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise RedisPoolError("options header is not a JSON object")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
