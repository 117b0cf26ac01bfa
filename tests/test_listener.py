"""The reply listener: bookkeeping when frames overtake the submitter (no Redis traffic needed), and who
reads the replies (the waiting caller, or the background thread)."""
from __future__ import annotations

import concurrent.futures
import threading

import fakeredis

from redispool import protocol
from redispool.backend import Backend
from redispool.errors import TaskLost
from redispool.future import TaskFuture
from redispool.keys import PoolKeys
from redispool.listener import ReplyListener
from tests.helpers import wait_until


def listener() -> ReplyListener:
    keys = PoolKeys("rp", "l")
    replies = ReplyListener(Backend(fakeredis.FakeRedis(), keys), keys.reply("c"))
    replies._start = lambda: None  # type: ignore[method-assign]  # no thread: frames are fed by hand
    return replies


def test_a_grant_that_arrives_before_the_submitter_waits_is_not_lost():
    replies = listener()
    future = TaskFuture("t1", "x")
    replies.expect(future)
    replies._handle(b"Gt1")
    event = replies.confirm("t1", granted=False)
    assert event is not None and event.is_set()


def test_an_outcome_that_arrives_before_the_submitter_waits_releases_it():
    """The task was dispatched, ran and finished before acquire's caller registered its wait."""
    replies = listener()
    future = TaskFuture("t2", "x")
    replies.expect(future)
    replies._handle(protocol.result_frame("t2", protocol.OK, 5))
    event = replies.confirm("t2", granted=False)
    assert event is not None and event.is_set() and future.result(0) == 5


def test_a_parked_submitter_waits_until_its_grant():
    replies = listener()
    replies.expect(TaskFuture("t3", "x"))
    event = replies.confirm("t3", granted=False)
    assert event is not None and not event.is_set()
    replies._handle(b"Gt3")
    assert event.is_set()
    assert replies._early_grants == set()



def test_a_sweep_settles_a_future_whose_outcome_frame_was_lost_from_the_result_key():
    """The release wrote the result key and pushed the frame, but the reply carrying the popped frame was
    lost with its connection: the sweep (run after every reconnect) reads the result key instead."""
    replies = listener()
    future = TaskFuture("t4", "x")
    replies.expect(future)
    replies.confirm("t4", granted=True)
    result_key = replies.backend.keys.result("t4")
    replies.backend.client.rpush(result_key, protocol.result_frame("t4", protocol.OK, 42))
    assert replies.sweep(min_age_s=0) == 0
    assert future.result(0) == 42 and replies.in_flight() == 0


def test_a_sweep_leaves_running_tasks_alone_and_fails_forgotten_ones():
    replies = listener()
    running, forgotten = TaskFuture("t5", "x"), TaskFuture("t6", "x")
    for future in (running, forgotten):
        replies.expect(future)
        replies.confirm(future.id, granted=True)
    replies.backend.client.hset(replies.backend.keys.key("tasks"), "t5", b"envelope")
    assert replies.sweep(min_age_s=0) == 1
    assert not running.done()
    assert isinstance(forgotten.exception(0), TaskLost)

# -- who reads: a waiting caller, or the background thread --------------------------------------------------
def record_readers(pool) -> list[tuple[str, bytes]]:
    """(thread name, frame) for each reply frame this pool's client handled."""
    seen: list[tuple[str, bytes]] = []
    handle = pool._replies._handle

    def recording(frame: bytes) -> None:
        seen.append((threading.current_thread().name, frame))
        handle(frame)

    pool._replies._handle = recording
    return seen


def test_a_caller_waiting_in_result_reads_its_own_replies(make_pool, make_worker):
    """One thread submitting and waiting: its outcomes are read on its own thread, not handed over."""
    make_worker(concurrency=1)
    pool = make_pool()
    seen = record_readers(pool)
    for i in range(40):
        assert pool.submit("t.echo", i).result(10) == i
    outcome_readers = [name for name, frame in seen if frame[:1] == b"R"]
    assert len(outcome_readers) == 40
    # Most by the caller itself; the background thread may step in only when the caller paused longer
    # than FOREGROUND_GRACE_S between waits (a loaded CI machine).
    assert outcome_readers.count(threading.current_thread().name) >= 20


def test_futures_nobody_waits_on_in_result_still_complete(make_pool, make_worker):
    make_worker(concurrency=2)
    pool = make_pool()
    seen = record_readers(pool)
    futures = [pool.submit("t.echo", i) for i in range(10)]
    done, not_done = concurrent.futures.wait(futures, timeout=10)
    assert not not_done and sorted(f.result(0) for f in done) == list(range(10))
    # Outcomes that arrive while submits go on may ride back on them; the last one can only have been
    # read by the background thread.
    last = [name for name, frame in seen if frame.startswith(b"R" + futures[-1].id.encode() + b"|")]
    assert last == ["redispool-replies"]


def test_a_caller_waiting_behind_a_reader_is_served_after_the_reader_leaves(make_pool, make_worker):
    """A reads while its quick task runs; B waits behind it for a slow task. A leaves once its own
    outcome is in (handing over), and B's outcome is then read by the background thread."""
    make_worker(concurrency=2)
    pool = make_pool()
    seen = record_readers(pool)
    slow = pool.submit("t.sleep", 0.6)
    quick = pool.submit("t.sleep", 0.2)
    a_waiting = threading.Event()
    results: dict[str, object] = {}

    def caller_a() -> None:
        a_waiting.set()
        results["a"] = quick.result(10)

    a = threading.Thread(target=caller_a, name="caller-a")
    a.start()
    a_waiting.wait(5)
    results["b"] = slow.result(10)
    a.join(10)
    assert results == {"a": 0.2, "b": 0.6}
    slow_reader = [name for name, frame in seen if frame.startswith(b"R" + slow.id.encode())]
    assert slow_reader == ["redispool-replies"]  # neither A (gone by then) nor B (a follower)
    assert pool._replies._followers == 0


def test_many_threads_waiting_at_once_all_get_their_results(make_pool, make_worker):
    make_worker(concurrency=4)
    pool = make_pool()
    errors: list[BaseException] = []
    got: list[int] = []

    def produce(base: int) -> None:
        try:
            for i in range(25):
                got.append(pool.submit("t.echo", base + i).result(20))
        except BaseException as exc:  # noqa: BLE001  re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(100 * n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(got) == sorted(100 * n + i for n in range(16) for i in range(25))
    assert pool._replies._followers == 0


def test_results_ride_back_on_the_next_submit(make_pool, make_worker):
    """With no other reader (no listener thread here), a finished task's outcome is taken by the next
    submit's acquire call, in the submitting thread."""
    make_worker(concurrency=1)
    pool = make_pool()
    pool._replies._start = lambda: None  # no background reader: only submits and waits read
    first = pool.submit("t.echo", 1)
    wait_until(lambda: pool.backend.client.exists(pool.keys.result(first.id)))
    assert not first.done()
    pool.submit("t.echo", 2)
    assert first.done() and first.result(0) == 1
