"""Wire formats: task envelopes, dispatch frames and reply frames, all msgpack, never pickle.

    envelope  = b"<task id>|<reply key>|" + msgpack({"v": 1, "task": name, "args": [...], "kwargs": {...}})
    dispatch  = b"<slot id>|" + envelope                 (built by the Lua scripts, read by workers)
    reply     = b"G<task id>"                            (grant: a parked task was dispatched)
              | b"R<task id>|" + msgpack([status, value])  (outcome, also kept at the task's result key)
    wake      = b"X"   (pushed to a reply list or an inbox to wake its blocked reader at once, e.g. on close)

Ids, slot ids and key names never contain "|", so the plain-text header splits unambiguously; only the
msgpack body can be hostile and it is decoded with size limits.
"""
from __future__ import annotations

import traceback as tb
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import SerializationError, TaskError, TaskNotRegistered

VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

WAKE = b"X"

# Outcome status codes in reply frames.
OK, ERROR, NOT_REGISTERED, BAD_MESSAGE = 0, 1, 2, 3


@dataclass(frozen=True)
class TaskMessage:
    """A decoded task as a worker sees it."""

    id: str
    reply_key: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


def pack(value: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(f"cannot encode with msgpack: {exc}") from exc


def unpack(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    """Decode untrusted bytes with limits; any failure is a SerializationError."""
    if len(data) > max_bytes:
        raise SerializationError(f"message of {len(data)} bytes exceeds the {max_bytes} byte limit")
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, max_bin_len=max_bytes,
            max_str_len=max_bytes, max_array_len=max_bytes,
            max_map_len=max_bytes // 2, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise SerializationError(f"undecodable message: {type(exc).__name__}: {exc}") from exc


def encode_envelope(task_id: str, reply_key: str, task: str, args: tuple | list, kwargs: dict | None,
                    options: dict | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    if not isinstance(task, str) or not task:
        raise SerializationError(f"task name must be a non-empty string, not {task!r}")
    body: dict[str, Any] = {"v": VERSION, "task": task, "args": list(args), "kwargs": dict(kwargs or {})}
    if options:
        body["opts"] = options
    packed = pack(body)
    # Decode what we send under the workers' limits (e.g. map keys must be strings), so a message a
    # worker would refuse is refused here, before anything reaches Redis.
    unpack(packed, max_bytes)
    data = f"{task_id}|{reply_key}|".encode() + packed
    if len(data) > max_bytes:
        raise SerializationError(f"task {task!r} message is {len(data)} bytes, over the {max_bytes} byte limit")
    return data


def split_dispatch(frame: bytes) -> tuple[str, str, str, bytes]:
    """Split a dispatch frame into (slot id, task id, reply key, body); raises SerializationError."""
    parts = frame.split(b"|", 3)
    if len(parts) != 4:
        raise SerializationError("malformed dispatch frame")
    try:
        slot, task_id, reply_key = (p.decode("ascii") for p in parts[:3])
    except UnicodeDecodeError as exc:
        raise SerializationError("malformed dispatch frame header") from exc
    return slot, task_id, reply_key, parts[3]


def decode_body(task_id: str, reply_key: str, body: bytes, max_bytes: int) -> TaskMessage:
    data = unpack(body, max_bytes)
    if not isinstance(data, dict) or data.get("v") != VERSION:
        version = data.get("v") if isinstance(data, dict) else data
        raise SerializationError(f"unknown message version {version!r}")
    task, args, kwargs = data.get("task"), data.get("args"), data.get("kwargs")
    if not isinstance(task, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
        raise SerializationError("message lacks task, args or kwargs")
    return TaskMessage(task_id, reply_key, task, args, kwargs, data.get("opts") or {})


def result_frame(task_id: str, status: int, value: Any) -> bytes:
    head = f"R{task_id}|".encode()
    try:
        return head + pack([status, value])
    except SerializationError as exc:
        return head + pack([BAD_MESSAGE, f"result of task {task_id} cannot be encoded: {exc}"])


def error_value(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__qualname__, "message": str(exc),
            "traceback": "".join(tb.format_exception(type(exc), exc, exc.__traceback__))}


def result_task_id(frame: bytes) -> str:
    """The task id in a result frame's plain header, readable even when the body is not."""
    head, sep, _ = frame[1:].partition(b"|")
    if not sep:
        raise SerializationError("malformed result frame")
    return head.decode("ascii", "replace")


def parse_result(frame: bytes) -> tuple[str, int, Any]:
    """(task id, status, value) of a result frame; a body that does not decode becomes a BAD_MESSAGE outcome."""
    task_id = result_task_id(frame)
    try:
        data = unpack(frame[2 + len(task_id):])
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
            raise SerializationError("malformed result frame body")
    except SerializationError as exc:
        return task_id, BAD_MESSAGE, f"task {task_id}: {exc}"
    return task_id, data[0], data[1]


def outcome(task_id: str, status: int, value: Any) -> tuple[Any, BaseException | None]:
    """Turn a reply's status and value into (result, exception) for a future."""
    if status == OK:
        return value, None
    if status == ERROR and isinstance(value, dict):
        return None, TaskError(str(value.get("type")), str(value.get("message")), str(value.get("traceback", "")),
                               task_id)
    if status == NOT_REGISTERED:
        return None, TaskNotRegistered(str(value), task_id)
    return None, SerializationError(str(value))
