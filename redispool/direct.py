"""The hot path's connections: one per thread, each command packed by hiredis in a single C call.

acquire, release and the blocking pops run once per task. Through redis-py's client each also pays a
connection-pool checkout and a Python-level encoding of every argument, which together cost more client
CPU than the round trip itself (measured on the 2-core dev box: 115 us per EVALSHA of 19 keys through
the client, 40 us here). A thread keeps its own connection, so there is no checkout and no lock; a failed
call leaves its connection disconnected (redis-py does that on any error, also on an interrupt between
send and read) and the next call reconnects. Used by backend.py only.
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import hiredis
import redis


class DirectCalls:
    """`calls(*command)` sends one command on the calling thread's own connection and returns the raw
    reply. Connections are made like the client's pool makes them (same URL, TLS, auth, client name)."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = pool.connection_kwargs
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()
        self._closed = False

    def __call__(self, *command: Any) -> Any:
        conn = self._connection()
        conn.send_packed_command((hiredis.pack_command(command),), check_health=False)
        return conn.read_response()

    def _connection(self) -> Any:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid() or self._closed:  # new thread, forked child, or closed
            conn = self._new_connection()
            local.conn, local.pid = conn, os.getpid()
        return conn

    def _new_connection(self) -> Any:
        with self._lock:
            if self._closed:  # a RedisError, not a ConnectionError: nothing a caller should retry
                raise redis.RedisError("connection closed (the pool or worker was closed)")
            conn = self._connection_class(**self._connection_kwargs)
            self._open.add(conn)
            return conn

    def close(self) -> None:
        """Disconnect every thread's connection; later calls fail (the pool or worker is closing)."""
        with self._lock:
            self._closed = True
            connections = list(self._open)
        for conn in connections:
            try:
                conn.disconnect()
            except Exception:  # best effort: the socket may already be gone
                pass
