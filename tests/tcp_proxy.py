"""A small TCP proxy for fault injection: it sits between redis-py and a private redis-server on 127.0.0.1
and can drop the reply to a chosen request, the way a network failure after the server ran a command does.

Every connection gets two daemon threads. The client-to-server thread splits the byte stream into RESP
requests and queues one entry per request *before* forwarding it; the server-to-client thread splits the
replies, pairs each with the oldest queued request (Redis answers every command once and in order, also
for pipelines) and forwards it, unless that request was picked to lose its reply: then the proxy reads and
discards the reply and closes both sockets, so redis-py sees a connection error and re-sends the command
on a fresh connection (the command has run on the server already).
"""
from __future__ import annotations

import collections
import dataclasses
import socket
import threading
from typing import Any, Callable


def resp_end(buf: bytes, pos: int = 0) -> int | None:
    """The index just past the one complete RESP value starting at buf[pos], or None if it is incomplete."""
    if pos >= len(buf):
        return None
    kind = buf[pos:pos + 1]
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    after = nl + 2
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):  # one line: simple string, error, integer, ...
        return after
    count = int(buf[pos + 1:nl])
    if kind in (b"$", b"=", b"!"):  # bulk string (and RESP3 verbatim string / bulk error)
        if count < 0:
            return after
        stop = after + count + 2
        return stop if len(buf) >= stop else None
    if kind in (b"*", b">", b"~", b"%"):  # array (and RESP3 push, set, map)
        if count < 0:
            return after
        at = after
        for _ in range(count * 2 if kind == b"%" else count):
            element_end = resp_end(buf, at)
            if element_end is None:
                return None
            at = element_end
        return at
    raise ValueError(f"not RESP: type byte {kind!r} at offset {pos}")


def split_resp(buf: bytearray) -> list[bytes]:
    """Remove and return the complete RESP values at the front of buf."""
    out: list[bytes] = []
    while True:
        end = resp_end(bytes(buf))
        if end is None:
            return out
        out.append(bytes(buf[:end]))
        del buf[:end]


@dataclasses.dataclass
class Watch:
    """Requests containing every marker: counted, and the replies to the first `drops_left` of them dropped.

    An error reply (e.g. NOSCRIPT) is never dropped: it is forwarded and the drop stays armed."""

    markers: tuple[bytes, ...]
    drops_left: int
    requests: int = 0                                            # matching requests forwarded to Redis
    dropped: list[bytes] = dataclasses.field(default_factory=list)    # replies read from Redis and thrown away
    forwarded: list[bytes] = dataclasses.field(default_factory=list)  # replies passed on to the client

    def matches(self, request: bytes) -> bool:
        return all(m in request for m in self.markers)


@dataclasses.dataclass
class _Pending:
    watches: list[Watch]
    drop_for: Watch | None


class TcpProxy:
    """Forward 127.0.0.1:<free port> to 127.0.0.1:<upstream_port>; see the module docstring."""

    def __init__(self, upstream_port: int, connect_timeout_s: float = 5.0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._watches: list[Watch] = []
        self._reply_markers: dict[bytes, int] = {}
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- what to do with the traffic -------------------------------------------------------------------
    def watch(self, *markers: bytes, drop: int = 1) -> Watch:
        """Count requests containing all markers and drop the replies to the first `drop` of them."""
        w = Watch(tuple(markers), drop)
        with self._lock:
            self._watches.append(w)
        return w

    def count_in_replies(self, marker: bytes) -> None:
        """From now on, count the occurrences of marker in the replies Redis sends to clients."""
        with self._lock:
            self._reply_markers.setdefault(marker, 0)

    def reply_count(self, marker: bytes) -> int:
        with self._lock:
            return self._reply_markers[marker]

    # -- lifetime --------------------------------------------------------------------------------------
    def start(self) -> "TcpProxy":
        self._spawn(self._accept_loop, "proxy-accept")
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            self._shut(sock)
        for thread in threads:
            thread.join(timeout_s)

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., Any], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _shut(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        with self._lock:
            self._sockets.discard(sock)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:  # the listener was closed
                return
            try:
                server = socket.create_connection(self.upstream, timeout=self.connect_timeout_s)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                if self._closed.is_set():
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
                self.connections += 1
            pending: collections.deque[_Pending] = collections.deque()
            self._spawn(self._client_to_server, "proxy-c2s", client, server, pending)
            self._spawn(self._server_to_client, "proxy-s2c", client, server, pending)

    def _client_to_server(self, client: socket.socket, server: socket.socket,
                          pending: collections.deque[_Pending]) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                buf += chunk
                # Queue an entry for every request this chunk completes before Redis can see it whole.
                for request in split_resp(buf):
                    with self._lock:
                        watches = [w for w in self._watches if w.matches(request)]
                        drop_for = None
                        for w in watches:
                            w.requests += 1
                            if drop_for is None and w.drops_left > 0:
                                w.drops_left -= 1
                                drop_for = w
                    pending.append(_Pending(watches, drop_for))
                server.sendall(chunk)
        except (OSError, ValueError):
            pass
        self._shut(client)
        self._shut(server)

    def _server_to_client(self, client: socket.socket, server: socket.socket,
                          pending: collections.deque[_Pending]) -> None:
        buf = bytearray()
        lost = False
        try:
            while not lost:
                chunk = server.recv(65536)
                if not chunk:
                    break
                buf += chunk
                for reply in split_resp(buf):
                    entry = pending.popleft() if pending else _Pending([], None)
                    with self._lock:
                        if entry.drop_for is not None and reply.startswith(b"-"):
                            entry.drop_for.drops_left += 1  # never drop an error reply: stay armed
                            entry.drop_for = None
                        if entry.drop_for is not None:
                            entry.drop_for.dropped.append(reply)
                            lost = True
                        else:
                            for w in entry.watches:
                                w.forwarded.append(reply)
                            for marker in self._reply_markers:
                                self._reply_markers[marker] += reply.count(marker)
                    if lost:
                        break  # the reply is thrown away and both sides are closed below
                    client.sendall(reply)
        except (OSError, ValueError):
            pass
        self._shut(client)
        self._shut(server)
