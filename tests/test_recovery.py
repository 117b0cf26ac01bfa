"""Crash safety with real worker processes and a private real redis-server: kill -9, SIGSTOP/SIGCONT,
poison tasks, a second SIGTERM, SCRIPT FLUSH under load, and Redis killed and restarted under load."""
from __future__ import annotations

import signal
import threading
import time

import pytest
import redis

import redispool
from redispool.embedded import RedisServer
from tests.conftest import WorkerProcesses
from tests.helpers import BackgroundSampler, wait_until

pytestmark = pytest.mark.redis_server

TTL_S = 2.0
FAST = ("--heartbeat-ttl", str(TTL_S))


@pytest.fixture
def pool(redis_server, real_redis):
    with redispool.Pool("p", redis_server.url) as pool:
        yield pool


class RunningSampler(BackgroundSampler):
    """Samples `running`; the invariant 0 <= running <= capacity must hold throughout."""

    def __init__(self, url: str, pool: str = "p") -> None:
        super().__init__(url, 0.005)
        self.key = f"rp:{{{pool}}}:running"
        self.values: list[int] = []

    def sample(self) -> None:
        self.values.append(int(self.client.get(self.key) or 0))


def pids(real_redis: redis.Redis, key: str) -> list[int]:
    return [int(p) for p in real_redis.lrange(key, 0, -1)]


def hold_with_a_parked_submitter(pool: redispool.Pool, url: str, real_redis: redis.Redis, key: str,
                                 hold_s: float) -> tuple[redispool.TaskFuture, threading.Thread, list[object]]:
    """Run t.hold (recording its pid under key) on the only free slot, then park a second submitter
    behind it; returns the held future, the parked submitter's thread and the list it appends its result to."""
    held = pool.submit("t.hold", url, key, hold_s)
    wait_until(lambda: len(pids(real_redis, key)) == 1, message="task running")
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(pool.submit("t.echo", "after").result(60)))
    waiter.start()
    wait_until(lambda: pool.stats()["waiting"] == 1, message="a submitter parked behind the task")
    return held, waiter, results


def test_kill_9_of_a_busy_worker_reruns_its_task_elsewhere_and_frees_capacity(
        pool, worker_procs, redis_server, real_redis):
    procs = worker_procs.start_and_wait("p", 2, 1, *FAST)
    pool.set_capacity(1)
    held, waiter, blocked = hold_with_a_parked_submitter(pool, redis_server.url, real_redis, "held", 1.0)

    victim = next(p for p in procs if p.pid == pids(real_redis, "held")[0])
    with RunningSampler(redis_server.url) as sampler:
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_until(lambda: len(pids(real_redis, "held")) == 2, 2 * TTL_S, message="task re-run within 2 TTLs")
        rerun_after_s = time.monotonic() - killed_at
        survivor = pids(real_redis, "held")[1]
        assert survivor != victim.pid
        assert held.result(30) == survivor
        waiter.join(30)
        assert blocked == ["after"]
        wait_until(lambda: pool.running() == 0, message="capacity freed exactly once")
    assert 0 <= min(sampler.values) and max(sampler.values) <= 1
    assert len(real_redis.lrange(f"rp:{{p}}:result:{held.id}", 0, -1)) == 1
    print(f"re-run {rerun_after_s:.2f} s after kill -9 (heartbeat TTL {TTL_S} s)")


def test_kill_9_of_an_idle_worker_sends_nothing_to_its_dead_slots(pool, worker_procs, redis_server, real_redis):
    victim, survivor = worker_procs.start_and_wait("p", 2, 2, *FAST)
    dead_id = next(w for w, rec in pool.workers().items() if rec["pid"] == victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_until(lambda: not real_redis.exists(f"rp:{{p}}:hb:{dead_id}"), 2 * TTL_S, message="death noticed")
    ran_on = {pool.submit("t.pid").result(30) for _ in range(40)}
    assert ran_on == {survivor.pid}
    slots = {s.decode() for s in real_redis.hkeys("rp:{p}:slots")}
    idle = {s.decode() for s in real_redis.lrange("rp:{p}:idle", 0, -1)}
    assert not any(s.startswith(dead_id) for s in slots | idle)
    assert not real_redis.exists(f"rp:{{p}}:inbox:{dead_id}")
    assert pool.stats()["workers"] == 1 and pool.running() == 0


def test_sigstop_past_the_ttl_then_sigcont_delivers_one_result_and_the_worker_serves_again(
        pool, worker_procs, redis_server, real_redis):
    procs = worker_procs.start_and_wait("p", 2, 1, "--heartbeat-ttl", "1")
    held = pool.submit("t.hold", redis_server.url, "paused", 2.0)
    wait_until(lambda: len(pids(real_redis, "paused")) == 1, message="task running")
    victim = next(p for p in procs if p.pid == pids(real_redis, "paused")[0])
    old_id = next(w for w, rec in pool.workers().items() if rec["pid"] == victim.pid)
    with RunningSampler(redis_server.url) as sampler:
        victim.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: len(pids(real_redis, "paused")) == 2, 10, message="re-run after the TTL")
            assert held.result(30) == pids(real_redis, "paused")[1] != victim.pid
        finally:
            victim.send_signal(signal.SIGCONT)
        # The paused worker finishes its stale run: its release is fenced off, so nothing changes.
        wait_until(lambda: any(rec["pid"] == victim.pid and w != old_id for w, rec in pool.workers().items()),
                   15, message="the worker registered again with fresh slots")
        time.sleep(2.5)  # let the stale run end and try to release
    assert 0 <= min(sampler.values) and max(sampler.values) <= 2
    frames = real_redis.lrange(f"rp:{{p}}:result:{held.id}", 0, -1)
    assert len(frames) == 1 and redispool.protocol.parse_outcome(frames[0])[1] != victim.pid
    assert pool.running() == 0 and pool.stats()["leases"] == 0
    # It serves again: two concurrent tasks on capacity 2 run on both workers.
    both = [pool.submit("t.hold", redis_server.url, "again", 0.5) for _ in range(2)]
    assert {f.result(30) for f in both} == {p.pid for p in procs}


def test_poison_task_is_dead_lettered_after_max_attempts_and_the_pool_keeps_serving(
        pool, worker_procs, redis_server):
    worker_procs.start_and_wait("p", 1, 1, *FAST)
    future = pool.submit_with("t.die", max_attempts=3)
    deaths = 0
    deadline = time.monotonic() + 60
    while not future.done() and time.monotonic() < deadline:
        live = [p for p in worker_procs.procs if p.poll() is None]
        deaths = sum(p.returncode == -signal.SIGKILL for p in worker_procs.procs if p.poll() is not None)
        if not live:
            worker_procs.start("p", 1, *FAST)
        time.sleep(0.05)
    with pytest.raises(redispool.WorkerLost) as info:
        future.result(1)
    assert info.value.attempts == 3 and deaths == 3
    [dead] = pool.dead_letters()
    assert dead.task_id == future.id and dead.attempts == 3 and "WorkerLost" in dead.error
    if not any(p.poll() is None for p in worker_procs.procs):
        worker_procs.start_and_wait("p", 1, 1, *FAST)
    assert pool.submit("t.add", 2, 3).result(30) == 5
    assert pool.running() == 0


def test_second_sigterm_stops_at_once_and_the_running_task_is_recovered(
        pool, worker_procs, redis_server, real_redis):
    [first] = worker_procs.start_and_wait("p", 1, 1, *FAST)
    pool.submit("t.hold", redis_server.url, "twice", 30)
    wait_until(lambda: len(pids(real_redis, "twice")) == 1, message="task running")
    first.send_signal(signal.SIGTERM)
    wait_until(lambda: pool.stats()["slots"] == 0, message="draining")
    first.send_signal(signal.SIGTERM)
    assert first.wait(10) == 3  # EXIT_ABORTED
    assert pool.stats()["waiting"] == 1 and pool.running() == 0  # re-queued at once, capacity freed
    [second] = worker_procs.start_and_wait("p", 1, 1, *FAST)
    wait_until(lambda: len(pids(real_redis, "twice")) == 2, message="re-run on the new worker")
    assert pids(real_redis, "twice")[1] == second.pid


def test_script_flush_at_any_moment_changes_nothing_visible(pool, worker_procs, real_redis):
    worker_procs.start_and_wait("p", 2, 2)
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            real_redis.script_flush()
            stop.wait(0.005)

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        assert list(pool.map("t.echo", range(2000), max_in_flight=32)) == list(range(2000))
    finally:
        stop.set()
        thread.join()
    assert pool.running() == 0 and pool.idle() == 4


def test_worker_warns_about_eviction_and_missing_persistence(redis_server, real_redis):
    real_redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        worker = redispool.Worker("p", redis_server.url, concurrency=1).start()
        worker.stop(timeout=10)
    finally:
        real_redis.config_set("maxmemory-policy", "noeviction")
    text = " ".join(worker.config_warnings)
    assert "allkeys-lru" in text and "persists nothing" in text


def test_redis_kill_9_and_restart_under_load_resolves_every_future(tmp_path):
    """50 submitter threads, 4 worker processes; Redis is killed (no persistence) and restarted on the
    same port. Every future resolves with a result or TaskLost within a bound; the pool works after."""
    server = RedisServer().start()
    procs = WorkerProcesses(server.url)
    try:
        procs.start_and_wait("p", 4, 2, *FAST)
        outcomes: dict[str, int] = {"ok": 0, "lost": 0, "hung": 0, "other": 0}
        lock = threading.Lock()
        pool = redispool.Pool("p", server.url)
        stop = threading.Event()

        def submitter() -> None:
            while not stop.is_set():
                try:
                    future = pool.submit("t.sleep", 0.02)
                except redispool.BackendError:
                    kind = "other"
                else:
                    try:
                        future.result(40)
                        kind = "ok"
                    except redispool.TaskLost:
                        kind = "lost"
                    except TimeoutError:
                        kind = "hung"
                    except redispool.RedisPoolError:
                        kind = "other"
                with lock:
                    outcomes[kind] += 1

        threads = [threading.Thread(target=submitter) for _ in range(50)]
        for t in threads:
            t.start()
        wait_until(lambda: outcomes["ok"] >= 200, 30, message="load running")
        server.stop()  # kill -9
        time.sleep(0.5)
        server.start()
        wait_until(lambda: redis.Redis(port=server.port).hlen("rp:{p}:slots") == 8, 30,
                   message="workers registered again")
        ok_at_restart = outcomes["ok"]
        wait_until(lambda: outcomes["ok"] >= ok_at_restart + 200, 60, message="load flows again")
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a submitter hung"
        assert outcomes["hung"] == 0 and outcomes["other"] == 0, outcomes
        assert pool.submit("t.add", 1, 2).result(30) == 3
        wait_until(lambda: pool.running() == 0 and pool.idle() == 8, 30)
        print(f"outcomes across a Redis restart: {outcomes}")
        pool.close()
    finally:
        procs.cleanup()
        server.cleanup()


def test_a_waiting_submitter_runs_the_reaper_when_no_worker_is_left(
        pool, worker_procs, redis_server, real_redis, monkeypatch):
    monkeypatch.setattr(redispool.pool, "REAP_AFTER_S", 1.0)
    [only] = worker_procs.start_and_wait("p", 1, 1, *FAST)
    held, waiter, later = hold_with_a_parked_submitter(pool, redis_server.url, real_redis, "alone", 2.0)
    only.send_signal(signal.SIGKILL)
    only.wait(10)
    wait_until(lambda: pool.running() == 0 and pool.stats()["waiting"] == 2, 15,
               message="the waiting submitter reaped the dead worker")
    assert real_redis.lindex("rp:{p}:waiting", 0).decode() == held.id  # recovered work goes first
    [fresh] = worker_procs.start_and_wait("p", 1, 1, *FAST)
    assert held.result(30) == fresh.pid
    waiter.join(30)
    assert later == ["after"]


def test_a_parked_submitter_parks_again_after_a_redis_restart_and_its_timeout_still_applies():
    server = RedisServer().start()
    procs = WorkerProcesses(server.url)
    try:
        with redispool.Pool("p", server.url) as pool:  # no worker yet: every submit parks
            outcomes: dict[str, object] = {}
            ended: dict[str, float] = {}

            def parked(name: str, timeout: float | None) -> None:
                try:
                    outcomes[name] = pool.submit_with("t.echo", (name,), timeout=timeout).result(60)
                except redispool.RedisPoolError as exc:
                    outcomes[name] = exc
                ended[name] = time.monotonic()

            started = time.monotonic()
            waiting = [threading.Thread(target=parked, args=("patient", None)),
                       threading.Thread(target=parked, args=("hasty", 5.0))]
            for thread in waiting:
                thread.start()
            wait_until(lambda: pool.stats()["waiting"] == 2, message="both parked")
            server.stop()  # kill -9 without persistence: the waiting line is gone
            server.start()
            wait_until(lambda: pool.stats()["waiting"] == 2, 10, message="both parked again")
            waiting[1].join(15)
            assert isinstance(outcomes["hasty"], redispool.PoolTimeout)
            assert 5.0 <= ended["hasty"] - started < 15.0  # its own timeout, counted from its submit
            assert pool.stats()["waiting"] == 1  # withdrawn atomically; the patient one still waits
            procs.start_and_wait("p", 1, 1, *FAST)
            waiting[0].join(30)
            assert outcomes["patient"] == "patient"
            wait_until(lambda: pool.running() == 0 and pool.stats()["waiting"] == 0, 30)
    finally:
        procs.cleanup()
        server.cleanup()
