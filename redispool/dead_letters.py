"""Dead letters: tasks set aside instead of retried forever (lost too often, undecodable, unknown)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import protocol
from .errors import SerializationError


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered task. `args`/`kwargs` are None when the message could not be decoded; `raw` then
    holds (the start of) its bytes. `when` is the Redis clock, in seconds since the epoch."""

    task_id: str
    task_name: str
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    error: str
    attempts: int
    when: float
    raw: bytes | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any], envelope: bytes | None, max_bytes: int) -> "DeadLetter":
        args = kwargs = None
        raw = envelope
        if envelope is not None:
            try:
                body = protocol.decode_body(protocol.split_envelope(envelope)[4], max_bytes)
                args, kwargs, raw = body.args, body.kwargs, None
            except SerializationError:
                pass
        return cls(str(record.get("id")), str(record.get("task")), args, kwargs, str(record.get("error")),
                   int(record.get("attempts") or 0), float(record.get("when_ms") or 0) / 1000, raw)
