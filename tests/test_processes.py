"""End to end with real worker processes (worker_main.py) and a private real redis-server."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest

import redispool
from tests.conftest import ROOT
from tests.helpers import wait_until

pytestmark = pytest.mark.redis_server


@pytest.fixture
def pool(redis_server, real_redis):
    with redispool.Pool("p", redis_server.url) as pool:
        yield pool


def test_ten_thousand_tasks_across_two_worker_processes(pool, worker_procs):
    procs = worker_procs.start_and_wait("p", count=2, concurrency=4)
    n = 10_000
    results = list(pool.map("t.echo", range(n), max_in_flight=64))
    assert results == list(range(n))
    pids = {pool.submit("t.pid").result(10) for _ in range(50)}
    assert pids <= {p.pid for p in procs}
    stats = pool.stats()
    assert stats["running"] == 0 and stats["idle"] == 8 and stats["slots"] == 8 and stats["waiting"] == 0
    assert stats["leases"] == 0


def test_thirty_two_submitters_never_exceed_capacity_four(pool, worker_procs, redis_server, real_redis):
    worker_procs.start_and_wait("p", count=2, concurrency=4)
    pool.set_capacity(4)
    per_thread, errors = 10, []

    def submitter() -> None:
        try:
            for _ in range(per_thread):
                pool.submit("t.track", redis_server.url, "conc", 0.01).result(60)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=submitter) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert int(real_redis.get("conc:done")) == 32 * per_thread
    peak = int(real_redis.get("conc:peak"))
    assert 2 <= peak <= 4, f"tasks observed {peak} running at once under capacity 4"
    assert pool.running() == 0


def test_blocked_submitters_are_dispatched_in_the_order_they_blocked(pool, worker_procs, redis_server, real_redis):
    worker_procs.start_and_wait("p", count=2, concurrency=2)
    pool.set_capacity(1)
    gate = pool.submit("t.gate", redis_server.url, "gate")
    wait_until(lambda: real_redis.llen("gate:entered") == 1, message="gate task running")
    futures: dict[int, redispool.TaskFuture] = {}

    def submit(i: int) -> None:
        futures[i] = pool.submit("t.record", redis_server.url, "order", i)

    threads = []
    for i in range(8):
        thread = threading.Thread(target=submit, args=(i,))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=i + 1: pool.stats()["waiting"] == n, message=f"submitter {i} parked")
    real_redis.rpush("gate", 1)
    for thread in threads:
        thread.join(30)
    assert gate.result(10) is True
    assert [futures[i].result(10) for i in range(8)] == list(range(8))
    assert [int(v) for v in real_redis.lrange("order", 0, -1)] == list(range(8))


def test_sigterm_drains_in_flight_tasks_and_exits_zero(pool, worker_procs, redis_server, real_redis):
    [leaving] = worker_procs.start_and_wait("p", count=1, concurrency=2)
    in_flight = [pool.submit("t.gate", redis_server.url, "g1") for _ in range(2)]
    wait_until(lambda: real_redis.llen("g1:entered") == 2, message="both tasks running")
    blocked: list[object] = []
    waiter = threading.Thread(target=lambda: blocked.append(pool.submit("t.echo", "later").result(30)))
    waiter.start()
    wait_until(lambda: pool.stats()["waiting"] == 1)

    leaving.terminate()
    wait_until(lambda: pool.stats()["slots"] == 0, message="slots taken out at once")
    real_redis.rpush("g1", 1, 1)
    assert [f.result(10) for f in in_flight] == [True, True]
    assert leaving.wait(30) == 0
    assert pool.stats()["waiting"] == 1 and not blocked  # its slots never served the waiting line

    worker_procs.start_and_wait("p", count=1, concurrency=1)  # the blocked submitter waits for this one
    waiter.join(30)
    assert blocked == ["later"]
    wait_until(lambda: pool.running() == 0 and pool.idle() == 1)


@pytest.mark.parametrize("launcher", ["module", "console-script"])
def test_other_worker_entry_points_serve_the_pool(pool, redis_server, launcher):
    if launcher == "module":
        cmd = [sys.executable, "-m", "redispool", "worker"]
    else:
        script = shutil.which("redispool")
        if script is None:
            pytest.skip("console script not installed (pip install -e .)")
        cmd = [script, "worker"]
    cmd += ["--url", redis_server.url, "--pool", "p", "--concurrency", "1", "--import", "tests.tasks"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert pool.submit("t.add", 1, 1).result(30) == 2
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_worker_with_unknown_import_exits_with_an_error(redis_server):
    proc = subprocess.run([sys.executable, str(ROOT / "worker_main.py"), "--url", redis_server.url,
                           "--import", "no_such_module_xyz"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no_such_module_xyz" in proc.stderr


def test_worker_reaches_redis_through_env_url(pool, redis_server, monkeypatch):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDISPOOL_URL": redis_server.url}
    proc = subprocess.Popen([sys.executable, str(ROOT / "worker_main.py"), "--pool", "p",
                             "--concurrency", "1", "--import", "tests.tasks"], cwd=ROOT, env=env)
    try:
        assert pool.submit("t.echo", "env").result(30) == "env"
    finally:
        proc.terminate()
        proc.wait(30)
