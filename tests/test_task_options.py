"""Per-task options through Pool and in-process Workers: retries, Retry, time limits in both execution
modes, lost child processes, dead letters. Run on fakeredis and on a real redis-server."""
from __future__ import annotations

import time

import pytest
import redis

import redispool
from tests.helpers import pool_data, wait_until

@pytest.fixture
def recorder_url(any_redis: redis.Redis, request: pytest.FixtureRequest) -> str:
    """A URL the recording tasks can reach: the real server, or (fakeredis) a TCP fakeredis server."""
    if isinstance(any_redis, redis.Redis) and "fakeredis" not in type(any_redis).__module__:
        kwargs = any_redis.connection_pool.connection_kwargs
        return f"redis://{kwargs['host']}:{kwargs['port']}/0"
    server = redispool.embedded.FakeRedisServer().start()
    request.addfinalizer(server.cleanup)
    return server.url


def test_task_that_raises_is_retried_with_backoff_then_succeeds(make_pool, make_worker, recorder_url):
    make_worker(concurrency=1)
    pool = make_pool()
    assert pool.submit("t.flaky", recorder_url, "flaky:1", 2).result(20) == 3  # declared retries=3


def test_retries_exhausted_raise_the_last_error(make_pool, make_worker, recorder_url):
    make_worker(concurrency=1)
    pool = make_pool()
    future = pool.submit_with("t.flaky", (recorder_url, "flaky:2", 5), retries=1, retry_backoff_s=0.01)
    with pytest.raises(redispool.TaskError, match="run 2 fails"):
        future.result(20)
    assert redis.Redis.from_url(recorder_url).get("flaky:2") == b"2"  # the first run and one retry


def test_no_retries_by_default(make_pool, make_worker, recorder_url):
    make_worker(concurrency=1)
    pool = make_pool()
    with pytest.raises(redispool.TaskError):
        pool.submit("t.fail", "once").result(10)


def test_retry_request_waits_its_delay_without_holding_capacity(make_pool, make_worker, recorder_url):
    make_worker(concurrency=1)
    pool = make_pool()
    future = pool.submit("t.retry_later", recorder_url, "later", 0.6)
    wait_until(lambda: pool.stats()["delayed"] == 1, message="task backing off")
    stats = pool.stats()
    assert stats["running"] == 0 and stats["idle"] == 1  # the slot is free during the backoff
    assert pool.submit("t.echo", "meanwhile").result(10) == "meanwhile"
    assert future.result(20) == 2
    starts = [float(t) for t in redis.Redis.from_url(recorder_url).lrange("later", 0, -1)]
    assert starts[1] - starts[0] >= 0.55


@pytest.mark.parametrize("execution", ["thread", "process"])
def test_time_limit_both_sides(make_pool, make_worker, execution):
    make_worker(concurrency=1, execution=execution, imports=["tests.tasks"])
    pool = make_pool()
    assert pool.submit_with("t.spin", (0.2,), time_limit=3.0).result(30) > 0  # just under: succeeds
    over = pool.submit_with("t.spin", (10,), time_limit=0.5)
    with pytest.raises(redispool.TaskTimeout) as info:
        over.result(30)
    assert info.value.time_limit_s == 0.5
    wait_until(lambda: pool.running() == 0 and pool.idle() == 1, message="slot back after the timeout")
    assert pool.submit("t.add", 1, 1).result(30) == 2  # the slot (and a fresh child) serve again


def test_process_time_limit_kills_code_a_thread_cannot_interrupt(make_pool, make_worker):
    make_worker(concurrency=1, execution="process", imports=["tests.tasks"])
    pool = make_pool()
    started = time.monotonic()
    with pytest.raises(redispool.TaskTimeout):
        pool.submit_with("t.sleep", (30,), time_limit=0.5).result(30)  # one long C call: killed
    assert time.monotonic() - started < 15


def test_child_process_that_dies_is_a_lost_attempt_and_dead_lettered_after_max_attempts(make_pool, make_worker):
    make_worker(concurrency=1, execution="process", imports=["tests.tasks"])
    pool = make_pool()
    future = pool.submit_with("t.die", max_attempts=2)
    with pytest.raises(redispool.WorkerLost) as info:
        future.result(60)
    assert info.value.attempts == 2
    [dead] = pool.dead_letters()
    assert dead.task_id == future.id and dead.task_name == "t.die" and dead.attempts == 2
    assert dead.args == [] and "WorkerLost" in dead.error and dead.when > 0
    assert pool.submit("t.add", 2, 2).result(30) == 4


def test_child_process_that_dies_once_is_rerun(make_pool, make_worker, recorder_url):
    make_worker(concurrency=1, execution="process", imports=["tests.tasks"])
    pool = make_pool()
    assert pool.submit("t.die_once", recorder_url, "die_once").result(60) == 2


def test_unknown_task_is_dead_lettered_and_can_be_requeued(make_pool, make_worker):
    make_worker(concurrency=1)
    pool = make_pool()
    future = pool.submit("not.yet.registered", 5)
    with pytest.raises(redispool.TaskNotRegistered):
        future.result(10)
    [dead] = pool.dead_letters()
    assert (dead.task_id, dead.task_name, dead.args) == (future.id, "not.yet.registered", [5])
    again = pool.requeue_dead(future.id)
    with pytest.raises(redispool.TaskNotRegistered):
        again.result(10)
    with pytest.raises(redispool.RedisPoolError):
        pool.requeue_dead("0" * 32)


def test_requeued_dead_letter_runs_again_and_resolves_its_new_future(make_pool, make_worker):
    make_worker(concurrency=1, execution="process", imports=["tests.tasks"])
    pool = make_pool()
    bad = pool.submit_with("t.die", max_attempts=1)
    with pytest.raises(redispool.WorkerLost):
        bad.result(30)
    assert [d.task_id for d in pool.dead_letters()] == [bad.id]
    with pytest.raises(redispool.WorkerLost):
        pool.requeue_dead(bad.id).result(30)
    assert len(pool.dead_letters()) == 1


@pytest.mark.parametrize("bad", [{"retries": -1}, {"max_attempts": 0}, {"on_worker_lost": "ignore"},
                                 {"time_limit": 0}, {"no_such_option": 1}])
def test_bad_options_are_refused_before_any_write(make_pool, make_worker, any_redis, bad):
    make_worker()
    pool = make_pool()
    before = pool_data(any_redis)
    with pytest.raises(redispool.RedisPoolError):
        pool.submit_with("t.echo", (1,), **bad)
    assert pool_data(any_redis) == before
    assert pool.running() == 0


def test_decorator_options_are_validated_and_published(make_pool, make_worker):
    with pytest.raises(redispool.RedisPoolError):
        redispool.task(name="bad.opts", retries="3")(lambda: None)
    make_worker()
    published = make_pool().tasks()["t.flaky"]
    assert published["retries"] == 3 and published["max_attempts"] == 3 and published["on_worker_lost"] == "requeue"
