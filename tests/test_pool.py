"""Pool and Worker behaviour with in-process workers, run on fakeredis and on a real redis-server."""
from __future__ import annotations

import threading

import pytest

import redispool
from redispool import protocol
from tests.helpers import pool_data, wait_until


def test_submit_returns_future_with_result(make_pool, make_worker):
    make_worker()
    pool = make_pool()
    future = pool.submit("t.add", 2, 3)
    assert isinstance(future, redispool.TaskFuture) and future.id and "|" not in future.id
    assert future.result(10) == 5
    assert pool.submit("t.echo", {"a": [1, 2.5, None, "x", b"\x00"]}).result(10) == {"a": [1, 2.5, None, "x", b"\x00"]}


def test_submit_accepts_the_decorated_function(make_pool, make_worker):
    from tests import tasks

    make_worker()
    pool = make_pool()
    assert pool.submit(tasks.add, 1, 2).result(10) == 3
    assert list(pool.map(tasks.echo, [1, 2])) == [1, 2]
    with pytest.raises(redispool.RedisPoolError):
        pool.submit(print, 1)


def test_kwargs_reach_the_task(make_pool, make_worker):
    make_worker()
    assert make_pool().submit("t.add", a=1, b=2).result(10) == 3


def test_task_error_carries_remote_type_message_and_traceback(make_pool, make_worker):
    make_worker()
    pool = make_pool()
    with pytest.raises(redispool.TaskError) as info:
        pool.submit("t.fail", "boom").result(10)
    assert info.value.type_name == "ValueError" and info.value.message == "boom"
    assert "raise ValueError(message)" in info.value.traceback
    wait_until(lambda: pool.running() == 0, message="capacity returned")


def test_unknown_task_fails_future_and_worker_keeps_serving(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    with pytest.raises(redispool.TaskNotRegistered):
        pool.submit("no.such.task").result(10)
    assert pool.submit("t.echo", 7).result(10) == 7
    wait_until(lambda: pool.stats()["running"] == 0 and pool.idle() == 1)


def test_unencodable_arguments_raise_before_any_redis_write(make_pool, make_worker, any_redis):
    make_worker()
    pool = make_pool()
    before = pool_data(any_redis)
    with pytest.raises(redispool.SerializationError):
        pool.submit("t.echo", object())
    with pytest.raises(redispool.SerializationError):
        pool.submit("t.echo", {1: "map keys must be strings"})
    assert pool_data(any_redis) == before and pool.running() == 0 and pool.idle() == 2


def test_message_over_the_size_limit_is_refused_at_submit(make_pool, make_worker):
    make_worker()
    pool = make_pool(settings=redispool.Settings(max_message_bytes=1024))
    with pytest.raises(redispool.SerializationError, match="limit"):
        pool.submit("t.echo", "x" * 2000)
    assert pool.submit("t.echo", "x" * 100).result(10) == "x" * 100


def test_unencodable_result_fails_future_and_returns_slot(make_pool, make_worker):
    make_worker()
    pool = make_pool()
    with pytest.raises(redispool.SerializationError):
        pool.submit("t.unencodable").result(10)
    wait_until(lambda: pool.running() == 0)


def test_malformed_message_body_is_reported_and_slot_returned(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    future = redispool.TaskFuture("bad0", "t.echo")
    pool._replies.expect(future)
    hostile = f"bad0|{pool._replies.reply_key}|t.echo||".encode() + b"\xc1\xff\x00garbage"
    pool.backend.acquire("bad0", hostile, pool._replies.reply_key, park=False)
    with pytest.raises(redispool.SerializationError):
        future.result(10)
    wait_until(lambda: pool.running() == 0 and pool.idle() == 1)
    assert pool.submit("t.echo", 1).result(10) == 1


def test_garbage_in_an_inbox_is_dropped_and_worker_keeps_serving(make_pool, make_worker):
    worker = make_worker(concurrency=1)
    pool = make_pool()
    pool.backend.push(worker.inbox, b"\x00not a dispatch frame")
    assert pool.submit("t.echo", 2).result(10) == 2


def test_non_blocking_submit_raises_pool_full_and_leaves_state_unchanged(make_pool, make_worker, any_redis):
    make_worker(concurrency=1)
    pool = make_pool()
    gate = pool.submit("t.sleep", 0.5)
    wait_until(lambda: pool.running() == 1)
    with pytest.raises(redispool.PoolFull):
        pool.submit_with("t.echo", (1,), block=False)
    assert pool.stats()["waiting"] == 0
    assert gate.result(10) == 0.5
    assert pool.submit_with("t.echo", (1,), block=False).result(10) == 1


def test_blocking_submit_waits_for_capacity_then_runs(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    first = pool.submit("t.sleep", 0.3)
    second = pool.submit("t.echo", "after")  # blocks until first releases its slot
    # The release pushes first's result before second's grant, so first is settled when submit returns.
    assert first.done() and first.result() == 0.3
    assert second.result(10) == "after"


def test_timeout_expiring_withdraws_the_parked_task(make_pool, make_worker, any_redis):
    make_worker(concurrency=1)
    pool = make_pool()
    blocker = pool.submit("t.sleep", 1.0)
    with pytest.raises(redispool.PoolTimeout):
        pool.submit_with("t.record", ("unused", "never", 1), timeout=0.2)
    stats = pool.stats()
    assert stats["waiting"] == 0 and stats["in_flight"] == 1
    assert any_redis.hlen("rp:{p}:tasks") == 1  # only the blocker
    blocker.result(10)
    wait_until(lambda: pool.running() == 0 and pool.idle() == 1)


def test_timeout_not_reached_when_slot_frees_in_time(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    pool.submit("t.sleep", 0.2)
    assert pool.submit_with("t.echo", ("ok",), timeout=10).result(10) == "ok"


def test_zero_timeout_behaves_like_a_single_try(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    pool.submit("t.sleep", 0.5)
    with pytest.raises(redispool.PoolTimeout):
        pool.submit_with("t.echo", (1,), timeout=0)
    assert pool.stats()["waiting"] == 0


def test_map_keeps_input_order_and_does_not_splat_tuples(make_pool, make_worker):
    make_worker(concurrency=3)
    pool = make_pool()
    assert list(pool.map("t.echo", [(1, 2), [3], "s", 4])) == [[1, 2], [3], "s", 4]
    assert list(pool.map("t.echo", range(50), max_in_flight=4)) == list(range(50))


def test_map_bounds_in_flight_tasks(make_pool, make_worker):
    """When the k-th result is yielded, at most max_in_flight items have been taken and not yet yielded."""
    make_worker(concurrency=4)
    pool = make_pool()
    consumed = 0

    def items():
        nonlocal consumed
        for i in range(40):
            consumed += 1
            yield i

    outstanding = [consumed - k for k, _ in enumerate(pool.map("t.echo", items(), max_in_flight=3))]
    assert max(outstanding) == 3 and min(outstanding) >= 1 and consumed == 40


def test_map_raises_task_error_in_order(make_pool, make_worker):
    make_worker()
    pool = make_pool()
    results = pool.map("t.fail", ["x"])
    with pytest.raises(redispool.TaskError):
        next(results)


def test_result_by_id_from_another_client(make_pool, make_worker):
    make_worker()
    producer, reader = make_pool(), make_pool()
    future = producer.submit("t.sleep", 0.2)
    assert reader.result(future.id, timeout=10) == 0.2  # waits for it
    assert reader.result(future.id, timeout=1) == 0.2  # and can read it again
    failed = producer.submit("t.fail", "no")
    with pytest.raises(redispool.TaskError):
        reader.result(failed.id, timeout=10)
    with pytest.raises(redispool.ResultTimeout):
        reader.result("0" * 32, timeout=0.2)


def test_result_ttl_is_configurable(make_pool, make_worker, any_redis):
    make_worker(settings=redispool.Settings(result_ttl_s=30))
    pool = make_pool()
    future = pool.submit("t.echo", 1)
    future.result(10)
    assert 0 < any_redis.pttl(f"rp:{{p}}:result:{future.id}") <= 30_000


def test_close_fails_pending_futures_and_refuses_new_submits(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    slow = pool.submit("t.sleep", 0.5)
    pool.close()
    with pytest.raises(redispool.PoolClosed):
        slow.result(5)
    with pytest.raises(redispool.PoolClosed):
        pool.submit("t.echo", 1)
    listener = pool._replies._thread
    assert listener is not None and not listener.is_alive()


def test_close_wakes_a_blocked_submitter(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    pool.submit("t.sleep", 1.0)
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            pool.submit("t.echo", 1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    wait_until(lambda: pool.stats()["waiting"] == 1)
    pool.close()
    thread.join(10)
    assert not thread.is_alive() and isinstance(errors[0], redispool.PoolClosed)


def test_capacity_control_and_stats(make_pool, make_worker):
    make_worker(concurrency=3)
    pool = make_pool()
    assert (pool.capacity(), pool.running(), pool.idle()) == (3, 0, 3)
    pool.set_capacity(1)
    assert pool.capacity() == 1
    pool.set_capacity(None)
    assert pool.capacity() == 3
    with pytest.raises(redispool.RedisPoolError):
        pool.set_capacity(-1)
    stats = pool.stats()
    assert stats["workers"] == 1 and stats["slots"] == 3 and stats["pool"] == "p"


def test_capacity_given_to_the_constructor_is_applied(make_pool, make_worker):
    make_worker(concurrency=3)
    assert make_pool(capacity=2).capacity() == 2


def test_workers_publish_task_names_and_options(make_pool, make_worker):
    worker = make_worker()
    pool = make_pool()
    tasks = pool.tasks()
    assert {"t.echo", "t.add", "t.track"} <= set(tasks)
    assert worker.id in pool.workers()


def test_pool_never_exceeds_capacity_with_threads(make_pool, make_worker, any_redis):
    """32 submitter threads against capacity 3 on one in-process worker of 6 slots."""
    make_worker(concurrency=6)
    pool = make_pool(capacity=3)
    peak = {"running": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["running"] = max(peak["running"], pool.running())

    sampler = threading.Thread(target=sample)
    sampler.start()
    errors: list[BaseException] = []

    def submitter(n: int) -> None:
        try:
            for i in range(5):
                assert pool.submit("t.add", n, i).result(30) == n + i
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    sampler.join()
    assert not errors and not any(t.is_alive() for t in threads)
    assert 1 <= peak["running"] <= 3
    wait_until(lambda: pool.running() == 0 and pool.idle() == 6)


def test_stopped_worker_drains_and_its_slots_leave(make_pool, make_worker):
    worker = make_worker(concurrency=2)
    pool = make_pool()
    futures = [pool.submit("t.sleep", 0.3) for _ in range(2)]
    wait_until(lambda: pool.running() == 2)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    wait_until(lambda: pool.stats()["slots"] == 0, message="slots deregistered at once")
    assert [f.result(10) for f in futures] == [0.3, 0.3]
    stopper.join(10)
    stats = pool.stats()
    assert stats["running"] == 0 and stats["idle"] == 0 and stats["workers"] == 0


def test_blocked_submitter_waits_for_a_worker_that_joins_later(make_pool, make_worker):
    pool = make_pool()
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(pool.submit("t.echo", "late").result(10)))
    thread.start()
    wait_until(lambda: pool.stats()["waiting"] == 1)
    make_worker(concurrency=1)
    thread.join(10)
    assert result == ["late"]


def test_module_level_submit_uses_the_default_pool(monkeypatch, any_redis, make_worker):
    make_worker(pool="default")
    monkeypatch.setattr(redispool, "_default", redispool.Pool(redis=any_redis))
    try:
        assert redispool.submit("t.add", 40, 2).result(10) == 42
    finally:
        redispool._default.close()  # type: ignore[union-attr]


def test_invalid_pool_names_and_settings_are_refused(any_redis):
    with pytest.raises(redispool.RedisPoolError):
        redispool.Pool("has space", redis=any_redis)
    with pytest.raises(redispool.RedisPoolError):
        redispool.Pool("x|y", redis=any_redis)
    with pytest.raises(redispool.RedisPoolError):
        redispool.Settings(result_ttl_s=0)
    with pytest.raises(redispool.RedisPoolError):
        redispool.Worker("p", redis=any_redis, concurrency=0)


def test_result_frames_round_trip():
    frame = protocol.result_frame("abc", protocol.OK, [1, "x"])
    assert protocol.parse_outcome(frame) == ("abc", [1, "x"], None)
    task_id, _, error = protocol.parse_outcome(b"Rabc|\xc1")
    assert task_id == "abc" and isinstance(error, redispool.SerializationError)


def drop_grant_frames(pool: redispool.Pool) -> None:
    """Make the listener lose every grant frame, as if it had vanished in transit."""
    handle = pool._replies._handle
    pool._replies._handle = lambda frame: None if frame[:1] == b"G" else handle(frame)  # type: ignore[method-assign]


@pytest.mark.parametrize("timeout_s", [None, 0.8])
def test_submitter_whose_grant_is_lost_still_returns_its_dispatched_future(make_pool, make_worker, timeout_s):
    """Both sides of the wait: the grant never arrives, yet the task was dispatched, so submit returns its
    future (found by re-reading the task's state, or by a withdraw that finds nothing left to withdraw)."""
    make_worker(concurrency=1)
    pool = make_pool()
    drop_grant_frames(pool)
    pool.submit("t.sleep", 0.2)
    future = pool.submit_with("t.echo", ("dispatched",), timeout=timeout_s)
    assert future.result(10) == "dispatched"
    assert pool.stats()["waiting"] == 0


def test_queue_size_lets_submits_run_ahead_then_blocks_beyond_it(make_pool, make_worker, any_redis):
    make_worker(concurrency=1)
    pool = make_pool(queue_size=2)
    gate = pool.submit("t.sleep", 0.6)  # takes the only slot
    wait_until(lambda: pool.running() == 1)
    queued = [pool.submit("t.echo", i) for i in range(2)]  # return at once: fewer than 2 wait ahead
    assert pool.stats()["waiting"] == 2 and not any(f.done() for f in queued)
    with pytest.raises(redispool.PoolTimeout):
        pool.submit_with("t.echo", (2,), timeout=0.2)  # a third would wait: the queue is full
    assert [f.result(10) for f in queued] == [0, 1] and gate.result(10) == 0.6
    assert pool.running() <= 1


def test_submit_many_keeps_order_and_waits_for_every_grant(make_pool, make_worker):
    make_worker(concurrency=2)
    pool = make_pool()
    futures = pool.submit_many("t.add", [(i, i) for i in range(40)])
    assert [f.result(10) for f in futures] == [2 * i for i in range(40)]
    wait_until(lambda: pool.running() == 0 and pool.idle() == 2)


def test_submit_many_refuses_a_bad_item_before_any_write(make_pool, make_worker, any_redis):
    make_worker()
    pool = make_pool()
    before = pool_data(any_redis)
    with pytest.raises(redispool.SerializationError):
        pool.submit_many("t.echo", [(1,), (object(),)])
    assert pool_data(any_redis) == before and pool.stats()["in_flight"] == 0


def test_submit_many_timeout_withdraws_what_still_waits(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    with pytest.raises(redispool.PoolTimeout) as info:
        pool.submit_many("t.sleep", [(0.5,), (0.5,), (0.5,)], timeout=0.2)
    [first] = info.value.submitted  # dispatched at once; the two parked behind it were withdrawn
    assert first.result(10) == 0.5
    assert pool.stats()["waiting"] == 0
    wait_until(lambda: pool.running() == 0)


@pytest.mark.parametrize("kind", ["fakeredis", "real"])
def test_a_client_that_decodes_replies_works_and_is_left_decoding(kind, request):
    """Applications often share a client made with decode_responses=True; redispool shadows it with a
    bytes client of the same settings, and the application's client keeps decoding."""
    import fakeredis
    import redis

    if kind == "fakeredis":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_server").url, decode_responses=True)
        client.flushall()
    worker = redispool.Worker("dec", redis=client, concurrency=2).start()
    try:
        with redispool.Pool("dec", redis=client) as pool:
            assert pool.submit("t.echo", "héllo").result(10) == "héllo"
            assert list(pool.map("t.echo", [b"\x83\x00", 2])) == [b"\x83\x00", 2]
            assert pool.stats()["running"] == 0
    finally:
        worker.stop(timeout=10)
    client.set("app-key", "value")
    assert client.get("app-key") == "value"  # still a decoding client
    client.close()


def test_an_unexpected_error_reading_the_inbox_does_not_kill_an_executor(make_pool, make_worker):
    """Any failure of an executor's inbox read (not only a Redis error) is logged and retried: a dead
    executor thread would silently shrink its worker."""
    worker = make_worker(concurrency=1, start=False)
    pop_many = worker.backend.pop_many
    failures = {"left": 2}

    def flaky_pop_many(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("unforeseen")
        return pop_many(*args, **kwargs)

    worker.backend.pop_many = flaky_pop_many
    worker.start()
    pool = make_pool()
    assert [pool.submit("t.echo", i).result(10) for i in range(3)] == [0, 1, 2]
    assert failures["left"] == 0
