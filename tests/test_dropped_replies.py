"""A lost reply to acquire and to release, injected by a TCP proxy (tests/tcp_proxy.py) between redis-py and a
private redis-server: the script runs on the server, its reply never reaches the client, the caller re-sends
the EVALSHA on a fresh connection, so the script runs twice. The pool must still show one lease, one
result and no drift.

Every client (the submitting Pool and the worker processes) reaches Redis through the proxy; the tasks
record their runs straight to Redis. Each test checks that the proxy really lost exactly one reply and
saw the command re-sent (so it cannot pass vacuously), and what the lost and the repeated replies were.
"""
from __future__ import annotations

import threading
import uuid
from typing import Iterator

import pytest
import redis

import redispool
from tests.conftest import WorkerProcesses
from tests.helpers import wait_until
from tests.tcp_proxy import TcpProxy, resp_end, split_resp

pytestmark = pytest.mark.redis_server

K = "rp:{p}:"


@pytest.fixture
def proxy(redis_server) -> Iterator[TcpProxy]:
    with TcpProxy(redis_server.port) as proxy:
        yield proxy


@pytest.fixture
def proxied_workers(proxy, real_redis) -> Iterator[WorkerProcesses]:
    """Worker processes (worker_main.py) whose Redis connections all go through the proxy."""
    procs = WorkerProcesses(proxy.url)
    yield procs
    procs.cleanup()


@pytest.fixture
def pool(proxy, real_redis) -> Iterator[redispool.Pool]:
    with redispool.Pool("p", proxy.url) as pool:
        # Load the scripts up front, so the first EVALSHA is answered by the script and not NOSCRIPT.
        for script in pool.backend._scripts.values():
            real_redis.script_load(script.script)
        yield pool


def sha(pool: redispool.Pool, name: str) -> bytes:
    return pool.backend._scripts[name].sha.encode()


def r_frame(task_id: str) -> bytes:
    """The start of a task's outcome frame as pushed to its submitter's reply list."""
    return b"R" + task_id.encode() + b"|"


def count_deliveries(proxy: TcpProxy, pool: redispool.Pool, real_redis: redis.Redis, *markers: bytes) -> list[int]:
    """How often each marker reached the pool's reply listener, counted once the listener has read everything
    already in its reply list: a sentinel pushed behind it must have passed the proxy first."""
    sentinel = b"G" + b"sentinel-" + uuid.uuid4().hex.encode()  # a grant for no task: the listener ignores it
    proxy.count_in_replies(sentinel)
    real_redis.rpush(pool.keys.reply(pool.client_id), sentinel)
    wait_until(lambda: proxy.reply_count(sentinel) == 1, 10, message="the listener read past the sentinel")
    return [proxy.reply_count(m) for m in markers]


def assert_no_drift(real_redis: redis.Redis, slots: int) -> None:
    """Nothing running, every slot idle exactly once, no lease, nothing parked, no task record left."""
    wait_until(lambda: int(real_redis.get(K + "running") or 0) == 0 and real_redis.llen(K + "idle") == slots,
               10, message="running back to 0 and every slot idle")
    idle = real_redis.lrange(K + "idle", 0, -1)
    assert sorted(idle) == sorted(real_redis.hkeys(K + "slots")) and len(set(idle)) == slots == len(idle)
    assert real_redis.hlen(K + "leases") == 0
    assert real_redis.hlen(K + "owner") == 0
    assert real_redis.hlen(K + "handoff") == 0
    assert real_redis.llen(K + "waiting") == 0 and real_redis.hlen(K + "parked") == 0
    assert real_redis.hlen(K + "tasks") == 0
    assert real_redis.zcard(K + "delayed") == 0 and real_redis.zcard(K + "dead") == 0
    inboxes = list(real_redis.scan_iter(match=K + "inbox:*"))
    assert all(real_redis.llen(key) == 0 for key in inboxes), "a dispatch frame was left in an inbox"


def test_lost_acquire_reply_dispatches_once(pool, proxy, proxied_workers, redis_server, real_redis):
    proxied_workers.start_and_wait("p", count=1, concurrency=2)
    acquire = proxy.watch(sha(pool, "acquire"), drop=1)

    future = pool.submit("t.gate", redis_server.url, "g")

    # The first acquire ran and dispatched (its reply, lost, said 1); the re-sent one answered 1 again.
    assert acquire.dropped == [b"*1\r\n:1\r\n"]  # one code per task: dispatched
    assert acquire.requests == 2 and acquire.forwarded == [b"*1\r\n:1\r\n"]
    wait_until(lambda: real_redis.llen("g:entered") == 1, 10, message="task running")
    proxy.count_in_replies(r_frame(future.id))
    assert real_redis.hlen(K + "leases") == 1 and int(real_redis.get(K + "running")) == 1  # one lease
    real_redis.rpush("g", 1)  # opens the gate for one run: a second dispatch would hold its slot
    assert future.result(10) is True
    assert_no_drift(real_redis, slots=2)
    assert real_redis.llen("g:entered") == 1  # the task ran once
    assert count_deliveries(proxy, pool, real_redis, r_frame(future.id)) == [1]
    stats = pool.stats()
    assert (stats["running"], stats["idle"], stats["waiting"], stats["leases"]) == (0, 2, 0, 0)


def test_lost_release_reply_delivers_one_result_and_returns_the_slot_once(pool, proxy, proxied_workers,
                                                                          redis_server, real_redis):
    proxied_workers.start_and_wait("p", count=1, concurrency=2)
    first = pool.submit("t.gate", redis_server.url, "g")
    wait_until(lambda: real_redis.llen("g:entered") == 1, 10, message="task running")
    release = proxy.watch(sha(pool, "release"), first.id.encode(), drop=1)
    proxy.count_in_replies(r_frame(first.id))

    real_redis.rpush("g", 1)

    assert first.result(10) is True
    wait_until(lambda: release.requests == 2 and len(release.forwarded) == 1, 10,
               message=f"release re-sent ({release.requests} requests, {release.forwarded!r})")
    # The first release returned the slot (lost reply {1}); the repeat found the lease gone: stale, {0}.
    assert release.dropped == [b"*1\r\n:1\r\n"]
    assert release.forwarded == [b"*1\r\n:0\r\n"]
    assert_no_drift(real_redis, slots=2)
    assert real_redis.llen("g:entered") == 1  # the task ran once
    assert count_deliveries(proxy, pool, real_redis, r_frame(first.id)) == [1]
    stats = pool.stats()
    assert (stats["running"], stats["idle"], stats["waiting"], stats["leases"]) == (0, 2, 0, 0)
    assert pool.submit("t.echo", "after").result(10) == "after"  # the pool still serves


def test_lost_reply_to_a_release_that_handed_the_slot_on(pool, proxy, proxied_workers, redis_server, real_redis):
    proxied_workers.start_and_wait("p", count=1, concurrency=1)  # capacity 1: the one registered slot
    first = pool.submit("t.gate", redis_server.url, "g")
    wait_until(lambda: real_redis.llen("g:entered") == 1, 10, message="first task running")

    parked: list[redispool.TaskFuture] = []
    submitter = threading.Thread(target=lambda: parked.append(pool.submit("t.record", redis_server.url, "runs", "2nd")),
                                 daemon=True)
    submitter.start()
    wait_until(lambda: real_redis.llen(K + "waiting") == 1, 10, message="second submitter parked")
    second_id = real_redis.lindex(K + "waiting", 0).decode()
    release = proxy.watch(sha(pool, "release"), first.id.encode(), drop=1)
    for marker in (r_frame(first.id), r_frame(second_id), b"G" + second_id.encode()):
        proxy.count_in_replies(marker)

    real_redis.rpush("g", 1)

    assert first.result(10) is True
    submitter.join(10)
    assert not submitter.is_alive() and len(parked) == 1 and parked[0].id == second_id
    assert parked[0].result(10) == "2nd"
    wait_until(lambda: release.requests == 2 and len(release.forwarded) == 1, 10,
               message=f"release re-sent ({release.requests} requests, {release.forwarded!r})")
    # The first release handed the slot to the parked task; its repeat answered the same dispatch frame.
    [lost] = release.dropped
    assert lost.startswith(b"*2\r\n:2\r\n$") and second_id.encode() in lost
    assert release.forwarded == [lost]
    assert_no_drift(real_redis, slots=1)
    assert real_redis.llen("g:entered") == 1
    assert real_redis.lrange("runs", 0, -1) == [b"2nd"]  # the handed-off task ran exactly once
    assert count_deliveries(proxy, pool, real_redis, r_frame(first.id), r_frame(second_id),
                            b"G" + second_id.encode()) == [1, 1, 1]
    stats = pool.stats()
    assert (stats["running"], stats["idle"], stats["waiting"], stats["leases"]) == (0, 1, 0, 0)


def test_proxy_splits_resp_only_at_complete_values():
    """The proxy pairs replies with requests, so a value cut across TCP chunks must not count as complete."""
    reply = b"*2\r\n$11\r\nrp:{p}:idle\r\n*3\r\n:1\r\n$-1\r\n+OK\r\n"
    for cut in range(len(reply)):
        assert resp_end(reply[:cut]) is None, cut
    assert resp_end(reply) == len(reply)
    buf = bytearray(reply + b"-NOSCRIPT x\r\n$3\r\nab")
    assert split_resp(buf) == [reply, b"-NOSCRIPT x\r\n"] and buf == b"$3\r\nab"
