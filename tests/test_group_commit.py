"""Group commit of concurrent submits: batching, modes and limits kept apart, failures shared, interrupted
callers never strand the queue, and a real pool under many submitting threads."""
from __future__ import annotations

import threading
import time

import pytest

from redispool.errors import BackendError
from redispool.group_commit import GroupCommit, _Caller
from tests.helpers import wait_until


class GatedSend:
    """A send whose first call blocks until released, so later callers queue up behind it."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], object]] = []
        self.release = threading.Event()
        self.first_started = threading.Event()

    def __call__(self, items: list[str], mode: object) -> list[str]:
        self.calls.append((list(items), mode))
        if len(self.calls) == 1:
            self.first_started.set()
            assert self.release.wait(10)
        return [f"{mode}:{item}" for item in items]


def run_callers(group: GroupCommit, calls: list[tuple[list[str], object]]) -> tuple[dict, list[threading.Thread]]:
    results: dict[int, object] = {}

    def one(index: int, items: list[str], mode: object) -> None:
        try:
            results[index] = group.call(items, mode)
        except BaseException as exc:  # noqa: BLE001  asserted by the tests
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i, items, mode)) for i, (items, mode) in enumerate(calls)]
    for thread in threads:
        thread.start()
    return results, threads


def queued(group: GroupCommit) -> int:
    with group._lock:
        return len(group._queue)


def queue_behind_a_send(group: GroupCommit, send: GatedSend, later: list[tuple[list[str], object]]) -> dict:
    """Start a caller whose send blocks, queue `later` callers behind it, let the send finish; returns the
    later callers' results (or errors) by index."""
    _, first_threads = run_callers(group, [(["a"], "m")])
    assert send.first_started.wait(5)
    results, later_threads = run_callers(group, later)
    wait_until(lambda: queued(group) == len(later))
    send.release.set()
    for thread in first_threads + later_threads:
        thread.join(10)
    return results


def test_a_lone_caller_sends_its_own_items():
    sent: list[list[int]] = []
    group: GroupCommit = GroupCommit(lambda items, mode: sent.append(items) or [i * 2 for i in items], limit=10)
    assert group.call([1, 2], "m") == [2, 4]
    assert group.call([3], "m") == [6]
    assert sent == [[1, 2], [3]]


def test_callers_queued_behind_a_send_go_together_in_the_next_one():
    send = GatedSend()
    group: GroupCommit = GroupCommit(send, limit=100)
    later = queue_behind_a_send(group, send, [(["b"], "m"), (["c", "d"], "m"), (["e"], "m")])
    assert send.calls[0] == (["a"], "m")
    assert later == {0: ["m:b"], 1: ["m:c", "m:d"], 2: ["m:e"]}
    assert len(send.calls) == 2 and sorted(send.calls[1][0]) == ["b", "c", "d", "e"]


def test_modes_are_never_mixed_and_the_limit_holds():
    send = GatedSend()
    group: GroupCommit = GroupCommit(send, limit=2)
    later = queue_behind_a_send(group, send, [(["b"], "park"), (["c"], "try"), (["d"], "park"), (["e"], "park")])
    assert later == {0: ["park:b"], 1: ["try:c"], 2: ["park:d"], 3: ["park:e"]}
    assert send.calls[0] == (["a"], "m")
    assert all(len(items) <= 2 for items, _ in send.calls)
    assert all(items == ["c"] for items, mode in send.calls if mode == "try")


def test_a_failed_send_fails_every_caller_in_its_batch():
    send = GatedSend()
    failing = {"on": True}

    def flaky(items: list[str], mode: object) -> list[str]:
        result = send(items, mode)
        if len(send.calls) > 1 and failing["on"]:
            raise BackendError("connection lost", transient=True)
        return result

    group: GroupCommit = GroupCommit(flaky, limit=100)
    later = queue_behind_a_send(group, send, [(["b"], "m"), (["c"], "m")])
    assert all(isinstance(r, BackendError) and r.transient for r in later.values())
    failing["on"] = False
    assert group.call(["z"], "m") == ["m:z"]  # nothing left stuck


def test_an_interrupt_of_the_sending_thread_reaches_the_others_as_a_transient_error():
    send = GatedSend()

    def interrupted(items: list[str], mode: object) -> list[str]:
        result = send(items, mode)
        if len(send.calls) == 2:
            raise KeyboardInterrupt
        return result

    group: GroupCommit = GroupCommit(interrupted, limit=100)
    later = queue_behind_a_send(group, send, [(["b"], "m"), (["c"], "m")])
    kinds = sorted(type(r).__name__ for r in later.values())
    assert kinds == ["BackendError", "KeyboardInterrupt"]  # the leader re-raises; the follower may retry


def test_an_interrupted_waiter_is_withdrawn_and_a_lead_it_was_given_moves_on():
    group: GroupCommit = GroupCommit(lambda items, mode: items, limit=100)
    gone: _Caller = _Caller(["x"], "m")
    next_in_line: _Caller = _Caller(["y"], "m")
    with group._lock:
        group._busy = True
        group._queue.extend([gone, next_in_line])
        gone.lead = True  # the previous leader handed it the lead just as it was interrupted
    group._abandon(gone)
    assert list(group._queue) == [next_in_line] and next_in_line.lead and next_in_line.wake.is_set()
    group._abandon(next_in_line)
    assert not group._busy and not group._queue
    assert group.call(["z"], "m") == ["z"]


@pytest.mark.parametrize("threads_count", [16])
def test_many_submitting_threads_share_acquire_calls(make_pool, make_worker, threads_count):
    """Each submit still returns only once Redis has its task; with acquire calls slowed to 5 ms they
    overlap, so far fewer calls than submits are made, and every result is right."""
    make_worker(concurrency=4)
    pool = make_pool()
    calls: list[int] = []
    acquire_many = pool.backend.acquire_many

    def slow_acquire_many(tasks, *args, **kwargs):
        calls.append(len(tasks))
        time.sleep(0.005)
        return acquire_many(tasks, *args, **kwargs)

    pool.backend.acquire_many = slow_acquire_many
    errors: list[BaseException] = []
    got: dict[int, list[int]] = {}

    def produce(n: int) -> None:
        try:
            futures = [pool.submit("t.echo", 100 * n + i) for i in range(20)]
            got[n] = [f.result(30) for f in futures]
        except BaseException as exc:  # noqa: BLE001  asserted below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert got == {n: [100 * n + i for i in range(20)] for n in range(threads_count)}
    assert sum(calls) == 20 * threads_count
    assert len(calls) <= 20 * threads_count // 2
