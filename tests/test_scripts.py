"""The Lua state machine, driven directly through Backend, on fakeredis and on a real server.

Invariant checked after every step: running == number of leases <= capacity (when the cap was not
lowered below running), and every registered slot is either idle or leased, never both.
"""
from __future__ import annotations

import pytest
import redis

from redispool import protocol
from redispool.backend import DISPATCHED, DONE, FULL, PARKED, Backend
from redispool.keys import PoolKeys

KEYS = PoolKeys("rp", "s")
REPLY = KEYS.reply("client1")
TTL_MS = 60_000


@pytest.fixture
def backend(any_redis: redis.Redis) -> Backend:
    return Backend(any_redis, KEYS)


def envelope(task_id: str, task: str = "t.echo", *args: object) -> bytes:
    return protocol.encode_envelope(task_id, REPLY, task, args, None)


def state(b: Backend) -> dict:
    r, k = b.client, KEYS.key
    return {
        "running": int(r.get(k("running")) or 0),
        "idle": [s.decode() for s in r.lrange(k("idle"), 0, -1)],
        "waiting": [s.decode() for s in r.lrange(k("waiting"), 0, -1)],
        "leases": {s.decode(): t.decode().rsplit(":", 1)[0] for s, t in r.hgetall(k("leases")).items()},
        "delayed": [t.decode() for t in r.zrange(k("delayed"), 0, -1)],
        "slots": {s.decode() for s in r.hkeys(k("slots"))},
        "tasks": {t.decode() for t in r.hkeys(k("tasks"))},
    }


def check_invariants(b: Backend) -> dict:
    s = state(b)
    assert s["running"] == len(s["leases"])
    assert not set(s["idle"]) & set(s["leases"]), "a slot is both idle and leased"
    assert len(s["idle"]) == len(set(s["idle"])), "a slot is on the idle stack twice"
    assert set(s["tasks"]) == set(s["leases"].values()) | set(s["waiting"]) | set(s["delayed"])
    return s


def inbox(b: Backend, worker: str) -> list[bytes]:
    return b.client.lrange(KEYS.inbox(worker), 0, -1)


def replies(b: Backend) -> list[bytes]:
    return b.client.lrange(REPLY, 0, -1)


def attempt_of(b: Backend, slot: str) -> int:
    return int(b.client.hget(KEYS.key("leases"), slot).rsplit(b":", 1)[1])


def done(b: Backend, slot: str, task_id: str, value: object = None, attempt: int | None = None) -> bytes | None:
    """Release the slot's run of task_id as a worker would (with the attempt its lease holds)."""
    if attempt is None:
        lease = b.client.hget(KEYS.key("leases"), slot)
        attempt = int(lease.rsplit(b":", 1)[1]) if lease and lease.startswith(task_id.encode() + b":") else 1
    frame = protocol.result_frame(task_id, protocol.OK, value)
    return b.release(slot, task_id, attempt, REPLY, DONE, frame, TTL_MS)


def register(b: Backend, worker: str, slots: list[str]) -> int:
    return b.register(worker, {}, 60_000, slots)


def test_register_pushes_slots_and_default_capacity_is_slot_count(backend):
    assert register(backend, "w1", ["w1.0", "w1.1"]) == 0
    s = check_invariants(backend)
    assert s["idle"] == ["w1.0", "w1.1"] and s["slots"] == {"w1.0", "w1.1"}
    assert backend.snapshot()["capacity"] == 2


def test_register_is_idempotent(backend):
    register(backend, "w1", ["w1.0"])
    register(backend, "w1", ["w1.0"])
    assert check_invariants(backend)["idle"] == ["w1.0"]


def test_acquire_takes_the_waiting_reply_frames_back_with_its_codes(backend):
    """Results and grants ride back on a submit: the frames come after the codes, oldest first, at most
    as many as asked, and leave the reply list."""
    register(backend, "w1", ["w1.0"])
    backend.client.rpush(REPLY, b"Rx|1", b"Gy", b"Rz|2")
    codes, frames = backend.acquire_many([("a", envelope("a")), ("b", envelope("b"))], REPLY, True, 0, 2)
    assert codes == [DISPATCHED, PARKED] and frames == [b"Rx|1", b"Gy"]
    assert replies(backend) == [b"Rz|2"]
    codes, frames = backend.acquire_many([("c", envelope("c"))], REPLY, True, 0, 0)  # not asked: none taken
    assert codes == [PARKED] and frames == [] and replies(backend) == [b"Rz|2"]
    codes, frames = backend.acquire_many([("d", envelope("d"))], REPLY, True, 0, 10)
    assert frames == [b"Rz|2"] and replies(backend) == []
    check_invariants(backend)


def test_acquire_pops_last_idled_slot_and_dispatches_to_its_worker(backend):
    register(backend, "w1", ["w1.0", "w1.1"])
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    s = check_invariants(backend)
    assert s["leases"] == {"w1.1": "a"} and s["idle"] == ["w1.0"] and s["running"] == 1
    [frame] = inbox(backend, "w1")
    d = protocol.split_dispatch(frame)
    assert (d.slot, d.attempt, d.retries_done, d.task_id, d.reply_key, d.task) == ("w1.1", 1, 0, "a", REPLY, "t.echo")


def test_full_pool_without_park_writes_nothing(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    before = state(backend)
    assert backend.acquire("b", envelope("b"), REPLY, park=False) == FULL
    assert state(backend) == before


def test_full_pool_parks_in_order_and_release_hands_slot_to_oldest(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == PARKED
    assert backend.acquire("c", envelope("c"), REPLY, park=True) == PARKED
    assert check_invariants(backend)["waiting"] == ["b", "c"]

    handed = done(backend, "w1.0", "a", 1)
    assert handed is not None and protocol.split_dispatch(handed).task_id == "b"
    s = check_invariants(backend)
    assert s["running"] == 1 and s["leases"] == {"w1.0": "b"} and s["waiting"] == ["c"]
    result_a, grant_b = replies(backend)
    assert protocol.parse_outcome(result_a) == ("a", 1, None)
    assert grant_b == b"Gb"  # the grant wakes b's submitter


def test_no_barging_while_tasks_are_parked(backend):
    register(backend, "w1", ["w1.0", "w1.1"])
    backend.set_capacity(1)
    backend.acquire("a", envelope("a"), REPLY, park=True)
    backend.acquire("b", envelope("b"), REPLY, park=True)
    backend.set_capacity(2)  # b is served by the rise...
    assert check_invariants(backend)["leases"] == {"w1.1": "a", "w1.0": "b"}
    backend.set_capacity(1)
    done(backend, "w1.0", "b")
    backend.acquire("c", envelope("c"), REPLY, park=True)  # full: c parks
    assert check_invariants(backend)["waiting"] == ["c"]
    # a slot is idle but c is parked: a newcomer must not overtake c, even when capacity frees
    assert backend.acquire("d", envelope("d"), REPLY, park=False) == FULL
    done(backend, "w1.1", "a")
    s = check_invariants(backend)
    assert s["leases"] == {"w1.1": "c"} and s["waiting"] == []


def test_release_is_idempotent_and_stale_release_changes_nothing(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    assert done(backend, "w1.0", "a") is None
    after = state(backend)
    assert after["running"] == 0
    assert done(backend, "w1.0", "a", attempt=1) is None  # the re-sent call after a lost reply
    assert state(backend) == after
    assert len(replies(backend)) == 1  # the result was delivered once


def test_repeated_release_that_handed_off_answers_the_same_task(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    backend.acquire("b", envelope("b"), REPLY, park=True)
    first = done(backend, "w1.0", "a")
    snapshot = state(backend)
    again = done(backend, "w1.0", "a", attempt=1)
    assert first == again and first is not None and protocol.split_dispatch(first).task_id == "b"
    assert state(backend) == snapshot


def test_repeated_acquire_answers_as_the_first_and_writes_nothing(backend):
    register(backend, "w1", ["w1.0"])
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    s = state(backend)
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    assert state(backend) == s and len(inbox(backend, "w1")) == 1
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == PARKED
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == PARKED
    assert check_invariants(backend)["waiting"] == ["b"]
    done(backend, "w1.0", "a")
    done(backend, "w1.0", "b")
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == DISPATCHED  # finished: not re-run
    assert check_invariants(backend)["running"] == 0


def test_withdraw_removes_parked_task_but_not_dispatched_one(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    backend.acquire("b", envelope("b"), REPLY, park=True)
    assert backend.withdraw("a") is False
    assert backend.withdraw("b") is True
    assert backend.withdraw("b") is False
    s = check_invariants(backend)
    assert s["waiting"] == [] and s["tasks"] == {"a"}
    assert done(backend, "w1.0", "a") is None
    assert check_invariants(backend)["idle"] == ["w1.0"]


def test_joining_worker_serves_waiting_line_first(backend):
    backend.acquire("a", envelope("a"), REPLY, park=True)  # no workers yet: parks
    backend.acquire("b", envelope("b"), REPLY, park=True)
    assert register(backend, "w1", ["w1.0", "w1.1", "w1.2"]) == 2
    s = check_invariants(backend)
    assert sorted(s["leases"].values()) == ["a", "b"] and len(s["idle"]) == 1 and s["waiting"] == []
    assert [protocol.split_dispatch(f).task_id for f in inbox(backend, "w1")] == ["a", "b"]
    assert replies(backend) == [b"Ga", b"Gb"]


def test_capacity_caps_running_below_slot_count_and_rise_serves_waiting(backend):
    register(backend, "w1", ["w1.0", "w1.1", "w1.2"])
    backend.set_capacity(1)
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    assert backend.acquire("b", envelope("b"), REPLY, park=True) == PARKED
    assert backend.set_capacity(3) == 1
    s = check_invariants(backend)
    assert s["running"] == 2 and s["waiting"] == []
    backend.set_capacity(None)
    assert backend.snapshot()["capacity"] == 3


def test_lowered_capacity_takes_effect_as_tasks_end(backend):
    register(backend, "w1", ["w1.0", "w1.1"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    backend.acquire("b", envelope("b"), REPLY, park=True)
    backend.set_capacity(1)
    backend.acquire("c", envelope("c"), REPLY, park=True)  # parks: running 2 > cap 1
    slot_a = protocol.split_dispatch(inbox(backend, "w1")[0]).slot
    assert done(backend, slot_a, "a") is None  # not handed on: running must fall to the cap first
    s = check_invariants(backend)
    assert s["running"] == 1 and s["waiting"] == ["c"]
    slot_b = next(iter(s["leases"]))
    assert done(backend, slot_b, "b") is not None  # now at the cap: c takes the slot
    assert check_invariants(backend)["running"] == 1


def test_capacity_zero_parks_everything(backend):
    register(backend, "w1", ["w1.0"])
    backend.set_capacity(0)
    assert backend.acquire("a", envelope("a"), REPLY, park=False) == FULL
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == PARKED
    assert backend.set_capacity(1) == 1


def test_deregister_takes_idle_slots_off_and_busy_slots_retire(backend):
    register(backend, "w1", ["w1.0", "w1.1"])
    register(backend, "w2", ["w2.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)  # takes w2.0 (last pushed)
    backend.acquire("b", envelope("b"), REPLY, park=True)  # takes w1.1
    assert backend.deregister("w1", ["w1.0", "w1.1"]) == 1
    s = check_invariants(backend)
    assert s["idle"] == [] and s["slots"] == {"w2.0"}
    backend.acquire("c", envelope("c"), REPLY, park=True)  # parks: only w2.0 counts
    assert done(backend, "w1.1", "b") is None  # retired: not handed to c, not pushed back
    s = check_invariants(backend)
    assert s["running"] == 1 and s["waiting"] == ["c"] and "w1.1" not in s["idle"]
    assert done(backend, "w2.0", "a") is not None  # the live worker serves c


def test_acquire_skips_slots_of_departed_workers(backend):
    register(backend, "w1", ["w1.0"])
    register(backend, "w2", ["w2.0"])
    backend.client.hdel(KEYS.key("slots"), "w2.0")  # w2 vanished without cleaning the stack
    backend.set_capacity(2)
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    assert check_invariants(backend)["leases"] == {"w1.0": "a"}
    assert inbox(backend, "w2") == []


def test_scripts_survive_script_flush(backend):
    register(backend, "w1", ["w1.0"])
    backend.client.script_flush()
    assert backend.acquire("a", envelope("a"), REPLY, park=True) == DISPATCHED
    backend.client.script_flush()
    assert done(backend, "w1.0", "a") is None
    assert check_invariants(backend)["running"] == 0


def test_result_key_is_kept_with_ttl_and_readable_twice(backend):
    register(backend, "w1", ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    done(backend, "w1.0", "a", {"x": 1})
    ttl = backend.client.pttl(KEYS.result("a"))
    assert 0 < ttl <= TTL_MS
    for _ in range(2):
        assert protocol.parse_outcome(backend.read_result("a", 0.5)) == ("a", {"x": 1}, None)
    assert backend.read_result("missing", 0.1) is None


def test_every_key_shares_the_pool_hash_tag(backend):
    backend.register("w1", {"host": "h"}, 60_000, ["w1.0"])
    backend.acquire("a", envelope("a"), REPLY, park=True)
    backend.acquire("b", envelope("b"), REPLY, park=True)
    done(backend, "w1.0", "a")
    keys = [k.decode() for k in backend.client.keys("*")]
    assert keys and all(k.startswith("rp:{s}:") for k in keys)
