"""Crash-recovery scripts (reap, heartbeat, abandon, retries, dead letters) driven through Backend, on
fakeredis and on a real server. A worker "dies" here by losing its heartbeat key, exactly what the
reaper reads; the process-level tests kill real workers."""
from __future__ import annotations

import json

import pytest
import redis

from redispool import protocol
from redispool.backend import DISPATCHED, LOST, PARKED, RETRY, Backend
from redispool.keys import PoolKeys
from tests.test_scripts import KEYS, REPLY, TTL_MS, check_invariants, done, envelope, inbox, register, state


@pytest.fixture
def backend(any_redis: redis.Redis) -> Backend:
    return Backend(any_redis, KEYS)


def kill(b: Backend, worker: str) -> None:
    b.client.delete(KEYS.heartbeat(worker))


def reap(b: Backend) -> int:
    b.client.delete(KEYS.key("reaper"))  # no lock left over from an earlier reap in the same test
    return b.reap(1000, TTL_MS)


def attempts(b: Backend, task_id: str) -> int:
    return int(b.client.hget(KEYS.key("counts"), f"{task_id}:a") or 0)


def replies(b: Backend) -> list[bytes]:
    return b.client.lrange(REPLY, 0, -1)


def test_reap_requeues_a_dead_workers_task_ahead_of_parked_ones_and_fences_its_late_release(backend):
    register(backend, "w1", ["w1.0"])
    register(backend, "w2", ["w2.0"])
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED  # on w2.0 (last pushed)
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == DISPATCHED  # on w1.0
    assert backend.acquire("c", envelope("c"), REPLY, park=True) == PARKED
    assert check_invariants(backend)["leases"] == {"w2.0": "a", "w1.0": "b"}

    kill(backend, "w2")
    assert reap(backend) == 1
    s = check_invariants(backend)
    assert s["running"] == 1 and s["waiting"] == ["a", "c"] and s["slots"] == {"w1.0"}
    assert backend.snapshot()["workers"] == 1 and inbox(backend, "w2") == []

    handed = done(backend, "w1.0", "b")  # the live slot serves the re-queued task first
    assert handed is not None
    d = protocol.split_dispatch(handed)
    assert (d.task_id, d.attempt) == ("a", 2) and attempts(backend, "a") == 2

    before = state(backend)
    assert done(backend, "w2.0", "a", attempt=1) is None  # the paused worker comes back: fenced off
    assert state(backend) == before and check_invariants(backend)["running"] == 1


def test_reap_runs_once_per_lock_period(backend):
    register(backend, "w1", ["w1.0"])
    assert reap(backend) == 0
    assert backend.reap(1000, TTL_MS) == -1


def test_lost_task_with_fail_policy_gets_worker_lost_and_is_dead_lettered(backend):
    register(backend, "w1", ["w1.0"])
    env = protocol.encode_envelope("a", REPLY, "t.echo", (1,), None, {"on_worker_lost": "fail"})
    backend.acquire("a", env, REPLY, park=True)
    kill(backend, "w1")
    assert reap(backend) == 1
    s = check_invariants(backend)
    assert s["running"] == 0 and s["tasks"] == set() and s["waiting"] == []
    task_id, _, error = protocol.parse_outcome(replies(backend)[-1])
    assert task_id == "a" and type(error).__name__ == "WorkerLost" and error.attempts == 1
    [(record, dead_env)] = backend.dead_letters()
    assert record["id"] == "a" and record["task"] == "t.echo" and record["attempts"] == 1 and dead_env == env


def test_published_max_attempts_dead_letters_after_that_many_losses(backend):
    backend.client.hset(KEYS.key("registry"), "t.echo", json.dumps({"max_attempts": 2}))
    backend.acquire("a", envelope("a"), REPLY, park=True)
    for n, worker in enumerate(["w1", "w2"], start=1):
        register(backend, worker, [f"{worker}.0"])
        assert attempts(backend, "a") == n
        kill(backend, worker)
        assert reap(backend) == 1
    s = check_invariants(backend)
    assert s["tasks"] == set() and s["running"] == 0
    assert [r["attempts"] for r, _ in backend.dead_letters()] == [2]
    assert type(protocol.parse_outcome(replies(backend)[-1])[2]).__name__ == "WorkerLost"


def test_acquire_drops_slots_whose_worker_stopped_heartbeating(backend):
    register(backend, "w1", ["w1.0"])
    register(backend, "w2", ["w2.0"])
    kill(backend, "w2")  # idle and dead, not yet reaped
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    s = check_invariants(backend)
    assert s["leases"] == {"w1.0": "a"} and "w2.0" not in s["slots"] and inbox(backend, "w2") == []
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == PARKED


def test_heartbeat_reports_a_lost_registration(backend):
    register(backend, "w1", ["w1.0"])
    assert backend.heartbeat("w1", 5000) is True
    assert 0 < backend.client.pttl(KEYS.heartbeat("w1")) <= 5000
    backend.deregister("w1", ["w1.0"])
    assert backend.heartbeat("w1", 5000) is False
    assert backend.heartbeat("w1", 5000, draining=True) is True  # a draining worker keeps beating


def test_retry_frees_the_slot_during_backoff_and_goes_ahead_of_new_tasks(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    assert backend.release("w1.0", "a", 1, REPLY, RETRY, b"", TTL_MS, 60_000) is None
    s = check_invariants(backend)
    assert s["running"] == 0 and s["delayed"] == ["a"] and s["idle"] == ["w1.0"] and replies(backend) == []
    backend.client.zadd(KEYS.key("delayed"), {"a": 0})  # the backoff is over
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == PARKED  # a goes first
    d = protocol.split_dispatch(inbox(backend, "w1")[-1])
    assert (d.task_id, d.attempt, d.retries_done) == ("a", 2, 1)


def test_lost_child_process_counts_a_loss_and_requeues(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    handed = backend.release("w1.0", "a", 1, REPLY, LOST, b"", TTL_MS)
    assert handed is not None and protocol.split_dispatch(handed).attempt == 2  # same slot, next attempt
    assert backend.client.hget(KEYS.key("counts"), "a:l") == b"1"


def test_abandon_requeues_running_tasks_without_counting_a_loss(backend):
    register(backend, "w1", ["w1.0", "w1.1"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    assert backend.abandon("w1", ["w1.0", "w1.1"]) == 1
    s = check_invariants(backend)
    assert s["running"] == 0 and s["waiting"] == ["a"] and s["slots"] == set() and s["idle"] == []
    assert backend.client.hget(KEYS.key("counts"), "a:l") is None
    assert not backend.client.exists(KEYS.heartbeat("w1"))
    register(backend, "w2", ["w2.0"])
    assert check_invariants(backend)["leases"] == {"w2.0": "a"}


def test_dead_letters_can_be_requeued_once(backend):
    register(backend, "w1", ["w1.0"])
    env = envelope("a")
    backend.acquire("a", env, REPLY, park=True)
    frame = protocol.result_frame("a", protocol.BAD_MESSAGE, "bad")
    backend.release("w1.0", "a", 1, REPLY, "dead", frame, TTL_MS, 0, "bad message: x")
    [(record, stored)] = backend.dead_letters()
    assert record["error"] == "bad message: x" and stored == env
    assert backend.requeue_dead("a", env) is True
    assert backend.requeue_dead("a", env) is False
    s = check_invariants(backend)
    assert s["leases"] == {"w1.0": "a"} and backend.dead_letters() == []
    assert not backend.client.exists(KEYS.result("a"))  # the old outcome is gone; the new one will replace it


def test_bury_keeps_unreadable_bytes_and_the_list_is_bounded(backend, monkeypatch):
    backend.bury("raw-1", b"\x00garbage", "SerializationError: no header")
    [(record, data)] = backend.dead_letters()
    assert record["task"] == "?" and data == b"\x00garbage"


def test_reaped_results_and_keys_stay_under_the_pool_tag(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    kill(backend, "w1")
    reap(backend)
    assert all(k.decode().startswith("rp:{s}:") for k in backend.client.keys("*"))


def test_keys_helper_names_heartbeats():
    assert PoolKeys("rp", "x").heartbeat("w") == "rp:{x}:hb:w"
