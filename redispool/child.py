"""The child process of `execution="process"`: `python -m redispool.child REQ_FD REPLY_FD MODULE...`.

It imports the task modules, then runs one task per request read from REQ_FD and writes one reply to
REPLY_FD, until the request pipe closes (the worker stopped or died). Frames are a 4-byte big-endian length
and a msgpack body: request [task name, args, kwargs], reply [status, value, retry?, delay, limit].
The task's own stdout and stderr stay the worker's.
"""
from __future__ import annotations

import importlib
import os
import signal
import struct
import sys

from . import protocol
from .execution import call_task

_HEADER = struct.Struct(">I")


def read_frame(fd: int) -> bytes | None:
    """One frame, or None at end of file."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0])


def write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C drains the worker; the child finishes its task
    request_fd, reply_fd = int(argv[0]), int(argv[1])
    for module in argv[2:]:
        importlib.import_module(module)
    while True:
        request = read_frame(request_fd)
        if request is None:
            return 0
        name, args, kwargs = protocol.unpack(request)
        result = call_task(name, args, kwargs)
        try:
            reply = protocol.pack([result.status, result.value, result.retry_requested, result.retry_delay_s,
                                   result.retry_limit])
        except Exception as exc:  # noqa: BLE001 - an unencodable return value
            reply = protocol.pack([protocol.BAD_MESSAGE, f"result cannot be encoded: {exc}", False, None, None])
        write_frame(reply_fd, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
