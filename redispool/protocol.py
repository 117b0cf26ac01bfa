"""Wire formats: task envelopes, dispatch frames and reply frames, msgpack bodies, never pickle.

    envelope  = b"<task id>|<reply key>|<task name>|<per-call options JSON or empty>|" + body
    body      = msgpack({"v": 1, "args": [...], "kwargs": {...}})
    dispatch  = b"<slot id>|<attempt>|<retries done>|" + envelope    (built by the Lua scripts)
    reply     = b"G<task id>"                               grant: a parked task was dispatched
              | b"R<task id>|" + msgpack([status, value])   outcome from a worker (also the result key)
              | b"E<task id>|<error>|<attempts>|<message>"  outcome decided in Redis (WorkerLost)
    wake      = b"X"    pushed to a reply list or an inbox to wake its blocked reader at once

Ids, slot ids, key names and task names never contain "|", and the options header is JSON without "|",
so the plain-text headers split unambiguously (also in Lua); only the msgpack body can be hostile, and it
is decoded with size limits.
"""
from __future__ import annotations

import traceback as tb
from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import (RedisPoolError, SerializationError, TaskError, TaskLost, TaskNotRegistered, TaskTimeout,
                     WorkerLost)
from .options import header_json, parse_header_json

VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
WAKE = b"X"

# Outcome status codes in R frames.
OK, ERROR, NOT_REGISTERED, BAD_MESSAGE, TIMEOUT = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Dispatch:
    """A dispatch frame's header: which slot runs which attempt of which task."""

    slot: str
    attempt: int
    retries_done: int
    task_id: str
    reply_key: str
    task: str
    options: dict[str, Any]
    body: bytes


@dataclass(frozen=True)
class TaskMessage:
    """A decoded body."""

    args: list[Any]
    kwargs: dict[str, Any]


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
            max_str_len=max_bytes, max_array_len=max_bytes, max_map_len=max_bytes // 2, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise SerializationError(f"undecodable message: {type(exc).__name__}: {exc}") from exc


def encode_envelope(task_id: str, reply_key: str, task: str, args: tuple | list, kwargs: dict | None,
                    options: dict | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    if not isinstance(task, str) or not task or "|" in task:
        raise SerializationError(f"task name must be a non-empty string without '|', not {task!r}")
    body = pack({"v": VERSION, "args": list(args), "kwargs": dict(kwargs or {})})
    # Decode what we send under the workers' limits (e.g. map keys must be strings), so a message a
    # worker would refuse is refused here, before anything reaches Redis.
    unpack(body, max_bytes)
    data = f"{task_id}|{reply_key}|{task}|{header_json(options)}|".encode() + body
    if len(data) > max_bytes:
        raise SerializationError(f"task {task!r} message is {len(data)} bytes, over the {max_bytes} byte limit")
    return data


class MalformedDispatch(SerializationError):
    """A dispatch frame whose slot and lease are readable but whose envelope header is not: the worker
    still releases the slot (with the raw task id and reply key) so nothing leaks."""

    def __init__(self, message: str, slot: str, attempt: int, raw_task_id: bytes, raw_reply_key: bytes) -> None:
        super().__init__(message)
        self.slot, self.attempt = slot, attempt
        self.raw_task_id, self.raw_reply_key = raw_task_id, raw_reply_key


def split_envelope(envelope: bytes) -> tuple[str, str, str, dict[str, Any], bytes]:
    """(task id, reply key, task name, per-call options, body); raises SerializationError."""
    parts = envelope.split(b"|", 4)
    if len(parts) != 5:
        raise SerializationError("malformed task envelope")
    try:
        task_id, reply_key, task, options = (p.decode("utf-8") for p in parts[:4])
        return task_id, reply_key, task, parse_header_json(options), parts[4]
    except (UnicodeDecodeError, RedisPoolError) as exc:
        raise SerializationError(f"malformed task envelope header: {exc}") from None


def split_dispatch(frame: bytes) -> Dispatch:
    """Parse a dispatch frame; raises MalformedDispatch when only its slot part is readable, and
    SerializationError when nothing is."""
    parts = frame.split(b"|", 3)
    if len(parts) != 4:
        raise SerializationError("malformed dispatch frame")
    try:
        slot, attempt, retries_done = parts[0].decode("ascii"), int(parts[1]), int(parts[2])
    except (UnicodeDecodeError, ValueError) as exc:
        raise SerializationError("malformed dispatch frame header") from exc
    try:
        task_id, reply_key, task, options, body = split_envelope(parts[3])
    except SerializationError as exc:
        raw = parts[3].split(b"|", 2)
        raise MalformedDispatch(str(exc), slot, attempt, raw[0], raw[1] if len(raw) > 1 else b"") from None
    return Dispatch(slot, attempt, retries_done, task_id, reply_key, task, options, body)


def decode_body(body: bytes, max_bytes: int) -> TaskMessage:
    data = unpack(body, max_bytes)
    if not isinstance(data, dict) or data.get("v") != VERSION:
        version = data.get("v") if isinstance(data, dict) else type(data).__name__
        raise SerializationError(f"unknown message version {version!r}")
    args, kwargs = data.get("args"), data.get("kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise SerializationError("message lacks args or kwargs")
    return TaskMessage(args, kwargs)


def result_frame(task_id: str | bytes, status: int, value: Any) -> bytes:
    head = b"R" + (task_id if isinstance(task_id, bytes) else task_id.encode()) + b"|"
    try:
        return head + pack([status, value])
    except SerializationError as exc:
        return head + pack([BAD_MESSAGE, f"result of task {task_id!r} cannot be encoded: {exc}"])


def error_value(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__qualname__, "message": str(exc),
            "traceback": "".join(tb.format_exception(type(exc), exc, exc.__traceback__))}


def frame_task_id(frame: bytes) -> str:
    """The task id in an outcome frame's plain header, readable even when the body is not."""
    head, sep, _ = frame[1:].partition(b"|")
    if not sep:
        raise SerializationError("malformed outcome frame")
    return head.decode("ascii", "replace")


def parse_outcome(frame: bytes) -> tuple[str, Any, BaseException | None]:
    """(task id, value, error) of an R or E frame; an undecodable body becomes a SerializationError."""
    task_id = frame_task_id(frame)
    rest = frame[2 + len(task_id):]
    if frame[:1] == b"E":
        kind, _, tail = rest.partition(b"|")
        attempts, _, message = tail.partition(b"|")
        text = message.decode("utf-8", "replace")
        if kind == b"WorkerLost":
            return task_id, None, WorkerLost(text, task_id, int(attempts or 0))
        return task_id, None, TaskLost(text, task_id)
    try:
        data = unpack(rest)
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
            raise SerializationError("malformed result frame body")
    except SerializationError as exc:
        return task_id, None, SerializationError(f"task {task_id}: {exc}")
    status, value = data
    return (task_id, *outcome(task_id, status, value))


def outcome(task_id: str, status: int, value: Any) -> tuple[Any, BaseException | None]:
    """Turn a result's status and value into (result, exception) for a future."""
    if status == OK:
        return value, None
    if status == ERROR and isinstance(value, dict):
        return None, TaskError(str(value.get("type")), str(value.get("message")), str(value.get("traceback", "")),
                               task_id)
    if status == NOT_REGISTERED:
        return None, TaskNotRegistered(str(value), task_id)
    if status == TIMEOUT:
        return None, TaskTimeout(f"task {task_id} exceeded its time limit of {value} s", task_id,
                                 float(value) if isinstance(value, (int, float)) else None)
    return None, SerializationError(str(value))
