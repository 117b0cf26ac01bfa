"""The hot path's per-thread connections (direct.py): one per thread, made like the client's (name,
auth), closed with their thread, never shared with a forked child, never left holding a stale reply
after an error, and all closed by close()."""
from __future__ import annotations

import os
import threading

import pytest
import redis

from redispool.direct import DirectCalls
from redispool.embedded import RedisServer
from tests.helpers import wait_until


def connection_ids(client: redis.Redis, name: str) -> list[int]:
    return [int(c["id"]) for c in client.client_list() if c.get("name") == name]


@pytest.mark.redis_server
def test_one_named_connection_per_thread_reused_across_calls(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, client_name="direct-test-1")
    observer = redis.Redis.from_url(redis_server.url)
    calls = DirectCalls(client)
    own_ids = {calls("CLIENT", "ID") for _ in range(5)}
    assert len(own_ids) == 1  # the same connection for every call of this thread

    other_ids: list[int] = []
    thread = threading.Thread(target=lambda: other_ids.extend(calls("CLIENT", "ID") for _ in range(3)))
    thread.start()
    thread.join()
    assert len(set(other_ids)) == 1 and set(other_ids) != own_ids  # another thread, its own connection

    # Connections carry the client's name, which is how workers see each other alive in CLIENT LIST.
    # The finished thread's connection goes with it; this thread's stays open.
    wait_until(lambda: set(connection_ids(observer, "direct-test-1")) == own_ids, timeout_s=5)
    calls.close()
    wait_until(lambda: connection_ids(observer, "direct-test-1") == [], timeout_s=5)
    with pytest.raises(redis.RedisError) as closed:
        calls("PING")  # no silent reconnect after close, and nothing a caller would retry
    assert not isinstance(closed.value, redis.ConnectionError)
    client.close()
    observer.close()


@pytest.mark.redis_server
def test_a_timed_out_call_leaves_no_stale_reply_behind(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    client.delete("direct:list")
    calls = DirectCalls(client)
    with pytest.raises(redis.TimeoutError):
        calls("BLMPOP", 1, 1, "direct:list", "LEFT", "COUNT", 1)  # the socket times out first
    client.rpush("direct:list", b"a")  # the abandoned pop must not take this, nor answer the next call
    assert calls("ECHO", b"next") == b"next"
    assert client.lrange("direct:list", 0, -1) == [b"a"]
    calls.close()
    client.close()


@pytest.mark.redis_server
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_connection(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    calls = DirectCalls(client)
    parent_id = calls("CLIENT", "ID")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report which connection its call used, then leave without cleanup
        try:
            os.write(write_end, str(calls("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_id = int(os.read(read_end, 64) or b"0")
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_id not in (0, parent_id)
    assert calls("CLIENT", "ID") == parent_id  # the parent's connection survived the child's exit
    calls.close()
    client.close()


def test_works_against_fakeredis(fake_redis: redis.Redis) -> None:
    calls = DirectCalls(fake_redis)
    fake_redis.rpush("l", b"x", b"y")
    assert calls("BLMPOP", 0.1, 1, "l", "LEFT", "COUNT", 5) == [b"l", [b"x", b"y"]]
    assert calls("EVAL", "return {KEYS[1], ARGV[1]}", 1, "k", 7) == [b"k", b"7"]
    with pytest.raises(redis.ResponseError):
        calls("INCR", "l")
    calls.close()
