"""Security: hostile messages against a live worker process, the message size limit, Redis ACL users and
passwords in URLs, key-prefix isolation between tenants, and rediss:// with certificate checks.

Everything runs against private real redis-servers (the module's, or one a test starts itself, killed by
PID) and real worker processes. Nothing here ever unpickles anything: the pickle payload below would
create a marker directory if anyone did, and the tests assert that it does not exist.
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

import redispool
from redispool.backend import DISPATCHED, FULL
from redispool.embedded import RedisServer, free_port
from redispool.worker import RAW_DEAD_LETTER_BYTES
from tests.conftest import IN_CI, ROOT, require_redis_server
from tests.helpers import pool_data, wait_until

pytestmark = pytest.mark.redis_server


# -- worker processes with their output in a file -------------------------------------------------------
# Not conftest's WorkerProcesses: that one takes no environment (needed for REDISPOOL_PREFIX and
# REDISPOOL_MAX_MESSAGE_BYTES) and pipes stderr to nobody, so hundreds of logged bad messages could fill
# the 64 KiB pipe and block the worker. Here the output goes to a file the tests can also inspect.

@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    started: list[Spawned] = []

    def start(url: str, pool: str = "p", concurrency: int = 2, env: dict[str, str] | None = None) -> Spawned:
        log = tmp_path / f"worker-{len(started)}.log"
        cmd = [sys.executable, str(ROOT / "worker_main.py"), "--url", url, "--pool", pool,
               "--concurrency", str(concurrency), "--import", "tests.tasks", "--log-level", "WARNING"]
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("REDISPOOL_")}
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env={**inherited, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT)
        spawned = Spawned(proc, log)
        started.append(spawned)
        return spawned

    yield start
    for spawned in started:
        if spawned.proc.poll() is None:
            spawned.proc.kill()
        spawned.proc.wait(10)


def wait_for_slots(client: redis.Redis, n: int, prefix: str = "rp", pool: str = "p") -> None:
    wait_until(lambda: client.hlen(f"{prefix}:{{{pool}}}:slots") >= n, 30, message=f"{n} worker slot(s) registered")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


# -- hostile messages -----------------------------------------------------------------------------------

class _Exploit:
    """Unpickling this creates `path`; if that directory ever exists, someone unpickled a message."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def hostile_bodies(marker: str, pad: int = 0) -> dict[str, bytes]:
    """Message bodies a worker must refuse with SerializationError; `pad` makes each about that many bytes."""
    fill = "x" * pad
    return {
        # 100,000 one-element arrays nested in each other (msgpack 0x91), then a nil.
        "deep nesting": b"\x91" * max(100_000, pad) + b"\xc0",
        # array32 header claiming 2**31 elements, followed by only a few (or `pad`) bytes.
        "huge array": b"\xdd" + (2**31).to_bytes(4, "big") + b"\xc0" * (8 + pad),
        # a valid body cut short in the middle of its last key.
        "truncated": msgpack.packb({"v": 1, "args": [fill, 2], "kwargs": {}})[:-4],
        # what a pickle-based queue would send; a loader that unpickled it would create the marker.
        "pickle": pickle.dumps([_Exploit(marker), fill]),
        # an extension type (custom object hook bait) and a non-string map key: never accepted.
        "ext type": msgpack.packb({"v": 1, "args": [msgpack.ExtType(42, fill.encode() + b"obj")], "kwargs": {}}),
        "int map key": msgpack.packb({"v": 1, "args": [fill], "kwargs": {1: 2}}),
        # well-formed msgpack of a message version this worker does not speak.
        "unknown version": msgpack.packb({"v": 99, "args": [1, 2, fill], "kwargs": {}}),
    }


def headerless_frames(pad: int = 0) -> list[bytes]:
    """Inbox entries that are no dispatch frame at all (no slot|attempt|retries| header)."""
    return [b"\x00\xffno header at all" + b"\xff" * pad, b"|||", b"not-a-slot|x|y|" + b"\x91" * 1000,
            pickle.dumps({"v": 1}) + b"\xfe" * (RAW_DEAD_LETTER_BYTES + 10)]  # longer than what is kept


def inject(pool: redispool.Pool, body: bytes, name: str = "t.add", park: bool = False,
           options: bytes = b"") -> tuple[redispool.TaskFuture, int]:
    """Send a hand-made envelope through the real acquire script, as a hostile submitter could."""
    task_id = uuid.uuid4().hex
    future = redispool.TaskFuture(task_id, name)
    pool._replies.expect(future)
    envelope = f"{task_id}|{pool._replies.reply_key}|".encode() + name.encode("utf-8", "surrogateescape") \
        + b"|" + options + b"|" + body
    code = pool.backend.acquire(task_id, envelope, pool._replies.reply_key, park=park)
    if code == FULL:
        pool._replies.forget(task_id)
    else:
        pool._replies.confirm(task_id, granted=code == DISPATCHED)
    return future, code


def stays(predicate: Callable[[], bool], seconds: float, message: str) -> None:
    """Assert predicate() holds throughout `seconds` (fails as soon as it does not)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), message
        time.sleep(0.05)


def settled(pool: redispool.Pool, client: redis.Redis) -> bool:
    """Nothing running, leased, parked, backing off or remembered as a live task."""
    s = pool.stats()
    return (s["running"] == 0 and s["leases"] == 0 and s["waiting"] == 0 and s["delayed"] == 0
            and client.hlen(pool.keys.key("tasks")) == 0 and client.hlen(pool.keys.key("counts")) == 0)


def test_hostile_messages_fail_fast_are_dead_lettered_and_the_worker_keeps_serving(
        redis_server, real_redis, spawn, tmp_path):
    worker = spawn(redis_server.url, concurrency=2)
    wait_for_slots(real_redis, 2)
    marker = tmp_path / "somebody-unpickled-a-message"
    with redispool.Pool("p", redis_server.url) as pool:
        assert pool.submit("t.add", 1, 2).result(10) == 3
        bodies = hostile_bodies(str(marker))
        sent: dict[str, tuple[str, bytes]] = {}
        for kind, body in bodies.items():
            future, code = inject(pool, body)
            assert code == DISPATCHED, kind
            started = time.monotonic()
            with pytest.raises(redispool.SerializationError):
                future.result(5)
            assert time.monotonic() - started < 5, kind
            sent[future.id] = (kind, body)

        unknown, code = inject(pool, msgpack.packb({"v": 1, "args": [1, 2], "kwargs": {}}), name="t.no_such_task")
        assert code == DISPATCHED
        with pytest.raises(redispool.TaskNotRegistered):
            unknown.result(5)

        [worker_id] = pool.workers()
        inbox = pool.keys.inbox(worker_id)
        garbage = headerless_frames()
        real_redis.rpush(inbox, *garbage)
        expected_dead = len(sent) + 1 + len(garbage)
        wait_until(lambda: pool.stats()["dead"] == expected_dead, 5, message="every hostile message dead-lettered")
        assert real_redis.llen(inbox) == 0

        letters = pool.dead_letters()
        assert len(letters) == expected_dead
        by_id = {letter.task_id: letter for letter in letters}
        for task_id, (kind, body) in sent.items():
            letter = by_id.pop(task_id)
            assert (letter.task_name, letter.args, letter.kwargs, letter.attempts) == ("t.add", None, None, 1), kind
            expected = "unknown message version 99" if kind == "unknown version" else "undecodable message"
            assert letter.error.startswith("bad message:") and expected in letter.error, (kind, letter.error)
            # The envelope is kept up to RAW_DEAD_LETTER_BYTES: hostile input cannot fill Redis through it.
            assert letter.raw is not None and len(letter.raw) <= RAW_DEAD_LETTER_BYTES, kind
            header_len = letter.raw.index(b"||") + 2
            assert letter.raw[header_len:] == body[:RAW_DEAD_LETTER_BYTES - header_len], kind
            assert abs(letter.when - time.time()) < 60, kind
        letter = by_id.pop(unknown.id)
        assert (letter.task_name, letter.args, letter.kwargs, letter.attempts) == ("t.no_such_task", [1, 2], {}, 1)
        assert letter.error == "TaskNotRegistered: t.no_such_task"
        # What is left are the headerless entries, under generated ids, with (the start of) their bytes.
        assert len(by_id) == len(garbage)
        for letter in by_id.values():
            assert letter.task_id.startswith("raw-") and letter.task_name == "?" and letter.attempts == 0
            assert letter.args is None and letter.kwargs is None
            assert letter.error.startswith("SerializationError:"), letter.error
        assert sorted(letter.raw or b"" for letter in by_id.values()) == sorted(
            g[:RAW_DEAD_LETTER_BYTES] for g in garbage)

        # No retry loop: nothing left running, leased or queued, and no dead letter added later.
        assert settled(pool, real_redis)
        stays(lambda: pool.stats()["dead"] == expected_dead and settled(pool, real_redis), 1.0,
              "a hostile message came back (retry loop)")
        # The worker still serves, with both of its slots.
        assert pool.submit("t.add", 2, 3).result(5) == 5
        wait_until(lambda: pool.idle() == 2, 5, message="both slots idle")
    assert worker.proc.poll() is None
    assert not marker.exists(), "a message was unpickled"
    assert "Traceback" not in worker.output()


def test_a_flood_of_hostile_messages_leaves_worker_memory_steady(redis_server, real_redis, spawn, tmp_path):
    worker = spawn(redis_server.url, concurrency=2)
    wait_for_slots(real_redis, 2)
    marker = tmp_path / "somebody-unpickled-a-message"
    pad = 256 * 1024  # each message about 256 KiB: 200 of them are ~50 MiB a leak could not hide
    bodies = list(hostile_bodies(str(marker), pad).values())
    frames = headerless_frames(pad)
    dead = 0

    with redispool.Pool("p", redis_server.url) as pool:
        [worker_id] = pool.workers()

        def flood(n: int) -> None:
            nonlocal dead
            futures: list[redispool.TaskFuture] = []
            for i in range(n):
                if i % 6 == 5:  # one in six: headerless, straight into the inbox
                    real_redis.rpush(pool.keys.inbox(worker_id), frames[i % len(frames)])
                else:
                    futures.append(inject(pool, bodies[len(futures) % len(bodies)], park=True)[0])
            for future in futures:
                assert isinstance(future.exception(30), redispool.SerializationError)
            dead += n
            wait_until(lambda: pool.stats()["dead"] == dead, 10, message=f"{dead} dead letters")

        flood(60)  # warm-up: the worker's code paths and allocator reach their working size
        before = memory_kib(worker.pid)
        started = time.monotonic()
        flood(200)
        elapsed = time.monotonic() - started
        after = memory_kib(worker.pid)

        growth_mib = (after["VmRSS"] - before["VmRSS"]) / 1024
        peak_growth_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
        assert growth_mib < 20, f"worker RSS grew {growth_mib:.1f} MiB over 200 hostile messages"
        assert peak_growth_mib < 64, f"worker peak RSS rose {peak_growth_mib:.1f} MiB over 200 hostile messages"
        assert elapsed < 15, f"200 hostile messages took {elapsed:.1f} s"
        assert settled(pool, real_redis)
        assert pool.submit("t.add", 40, 2).result(5) == 42
    assert worker.proc.poll() is None
    assert not marker.exists(), "a message was unpickled"


def test_deeply_nested_options_header_is_refused_like_a_bad_body(redis_server, real_redis, spawn):
    worker = spawn(redis_server.url, concurrency=1)
    wait_for_slots(real_redis, 1)
    with redispool.Pool("p", redis_server.url) as pool:
        body = msgpack.packb({"v": 1, "args": [1, 2], "kwargs": {}})
        future, code = inject(pool, body, options=b"[" * 100_000)
        assert code == DISPATCHED
        try:
            error = future.exception(2)
        except TimeoutError:
            error = None
        assert isinstance(error, redispool.SerializationError), "the future never settled"
        assert pool.submit_with("t.add", (1, 2), timeout=5).result(5) == 3
    assert "Traceback" not in worker.output()


def test_envelope_with_a_non_utf8_header_fails_its_future_and_returns_the_slot(redis_server, real_redis, spawn):
    spawn(redis_server.url, concurrency=1)
    wait_for_slots(real_redis, 1)
    with redispool.Pool("p", redis_server.url) as pool:
        body = msgpack.packb({"v": 1, "args": [1, 2], "kwargs": {}})
        future, code = inject(pool, body, name="t.\udcff\udcfeadd")  # bytes ff fe: not UTF-8
        assert code == DISPATCHED
        wait_until(lambda: pool.stats()["dead"] == 1, 5, message="the envelope dead-lettered")
        try:
            error = future.exception(2)
        except TimeoutError:
            error = None
        assert isinstance(error, redispool.SerializationError), "the future never settled"
        wait_until(lambda: pool.running() == 0 and pool.idle() == 1, 3, message="the slot came back")


def test_worker_refuses_a_message_over_its_own_size_limit(redis_server, real_redis, spawn):
    spawn(redis_server.url, concurrency=1, env={"REDISPOOL_MAX_MESSAGE_BYTES": "4096"})
    wait_for_slots(real_redis, 1)
    with redispool.Pool("p", redis_server.url) as pool:  # the default, larger, limit lets it through
        body = msgpack.packb({"v": 1, "args": ["x" * 8000], "kwargs": {}})
        future, code = inject(pool, body, name="t.echo")
        assert code == DISPATCHED
        with pytest.raises(redispool.SerializationError, match="limit"):
            future.result(5)
        [letter] = pool.dead_letters()
        assert letter.task_id == future.id and letter.error.startswith("bad message:")
        assert settled(pool, real_redis)
        assert pool.submit("t.echo", "small").result(5) == "small"


# -- the size limit at submit -----------------------------------------------------------------------------

def test_oversized_message_is_refused_at_submit_before_any_redis_write(redis_server, real_redis, spawn):
    spawn(redis_server.url, concurrency=1)
    wait_for_slots(real_redis, 1)
    with redispool.Pool("p", redis_server.url, settings=redispool.Settings(max_message_bytes=1024)) as pool:
        assert pool.submit("t.echo", "x" * 100).result(10) == "x" * 100
        client = pool.backend.client
        sent: list[tuple[Any, ...]] = []
        me = threading.get_ident()
        original = client.execute_command

        def recording(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == me:  # not the reply listener's blocking reads
                sent.append(args)
            return original(*args, **kwargs)

        before = pool_data(real_redis)
        client.execute_command = recording
        try:
            # The last: its body alone fits in 1024 bytes; with the envelope header it does not.
            assert len(msgpack.packb({"v": 1, "args": ["z" * 980], "kwargs": {}})) < 1024
            for args, kwargs in [(("x" * 2000,), {}), ((), {"blob": b"\0" * 4096}), ((["y"] * 600,), {}),
                                 (("z" * 980,), {})]:
                with pytest.raises(redispool.SerializationError, match="limit"):
                    pool.submit_with("t.echo", args, kwargs)
        finally:
            del client.execute_command
        assert sent == [], f"submit sent {[a[0] for a in sent]} before refusing"
        assert pool_data(real_redis) == before
        stats = pool.stats()
        assert (stats["running"], stats["idle"], stats["waiting"], stats["in_flight"]) == (0, 1, 0, 0)


# -- ACL users and passwords in the URL ---------------------------------------------------------------------

def test_acl_user_and_password_in_the_url(spawn):
    require_redis_server()
    server = RedisServer().start()  # our own: ACL changes must not leak into the module's server
    try:
        admin = redis.Redis(port=server.port, socket_timeout=10)
        admin.execute_command("ACL", "SETUSER", "alice", "on", ">s3cret-pw", "~*", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "default", "off")  # nobody gets in without a password
        admin.close()
        good = f"redis://alice:s3cret-pw@127.0.0.1:{server.port}/0"
        alice = redis.Redis.from_url(good, socket_timeout=10)

        worker = spawn(good, concurrency=1)
        wait_for_slots(alice, 1)
        with redispool.Pool("p", good) as pool:
            assert pool.submit("t.add", 20, 22).result(10) == 42
            assert "s3cret" not in repr(pool.workers())
        for key in alice.scan_iter("*"):
            assert b"s3cret" not in (alice.dump(key) or b""), key

        no_retry = redispool.Settings(redis_retry_s=0)
        # a wrong password, and no user at all (the default user is off)
        for url in (f"redis://alice:wrong-pw@127.0.0.1:{server.port}/0", f"redis://127.0.0.1:{server.port}/0"):
            with redispool.Pool("p", url, settings=no_retry) as bad:
                started = time.monotonic()
                with pytest.raises(redispool.BackendError) as info:
                    bad.submit_with("t.add", (1, 2), block=False)
                assert time.monotonic() - started < 5
                assert isinstance(info.value, redispool.RedisPoolError)
                assert isinstance(info.value.__cause__, redis.AuthenticationError)
                assert "wrong-pw" not in str(info.value)
                with pytest.raises(redispool.BackendError):
                    bad.stats()

        # A worker with a wrong password exits 1 with a clear message that does not echo the password.
        bad_worker = spawn(f"redis://alice:wrong-pw@127.0.0.1:{server.port}/0", concurrency=1)
        assert bad_worker.proc.wait(30) == 1
        output = bad_worker.output()
        assert "redispool:" in output and "invalid username-password pair" in output, output
        assert "wrong-pw" not in output
        assert "s3cret" not in worker.output()
        alice.close()
    finally:
        server.cleanup()


def test_a_bad_url_error_does_not_reveal_the_password():
    with pytest.raises(redispool.BackendError) as info:
        redispool.Pool("p", "redis://alice:s3cret-pw@127.0.0.1:1/0?socket_timeout=abc")
    assert "s3cret-pw" not in str(info.value)


# -- key-prefix isolation -------------------------------------------------------------------------------

class RecordingRedis(redis.Redis):
    """A client that records every command it sends, also those queued in its pipelines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(args)
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        queue = pipe.execute_command

        def recording(*args: Any, **options: Any) -> Any:
            self.sent.append(args)
            return queue(*args, **options)

        pipe.execute_command = recording  # type: ignore[method-assign]
        return pipe


def test_key_prefix_isolates_tenants_on_one_redis(redis_server, real_redis, spawn):
    url = redis_server.url
    worker = spawn(url, concurrency=2, env={"REDISPOOL_PREFIX": "tenantA"})
    wait_for_slots(real_redis, 2, prefix="tenantA")
    recording = RecordingRedis.from_url(url, socket_timeout=10)
    tenant_a = redispool.Pool("p", url, settings=redispool.Settings(prefix="tenantA"))
    tenant_b = redispool.Pool("p", redis=recording, settings=redispool.Settings(prefix="tenantB", redis_retry_s=0))
    try:
        assert tenant_a.submit("t.add", 1, 2).result(10) == 3
        assert "t.add" in tenant_a.tasks() and tenant_b.tasks() == {} and tenant_b.workers() == {}
        b_stats = tenant_b.stats()
        assert (b_stats["slots"], b_stats["capacity"], b_stats["idle"]) == (0, 0, 0)

        with pytest.raises(redispool.PoolFull):
            tenant_b.submit_with("t.record", (url, "ran-for-b", 1), block=False)
        outcome: list[BaseException | object] = []

        def submit_b() -> None:
            try:
                outcome.append(tenant_b.submit_with("t.record", (url, "ran-for-b", 2), timeout=1.5))
            except BaseException as exc:  # noqa: BLE001
                outcome.append(exc)

        waiter = threading.Thread(target=submit_b)
        waiter.start()
        wait_until(lambda: tenant_b.stats()["waiting"] == 1, 5, message="B's task parked")
        # While B's task waits, A's worker (idle most of the time) serves A's tasks, never B's.
        assert list(tenant_a.map("t.echo", range(20))) == list(range(20))
        waiter.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], redispool.PoolTimeout), outcome
        assert real_redis.exists("ran-for-b") == 0
        b_stats, a_stats = tenant_b.stats(), tenant_a.stats()
        assert (b_stats["waiting"], b_stats["running"], b_stats["leases"]) == (0, 0, 0)
        assert (a_stats["running"], a_stats["idle"], a_stats["slots"]) == (0, 2, 2)
        assert tenant_a.submit("t.add", 3, 4).result(10) == 7
    finally:
        tenant_b.close()
        tenant_a.close()
        recording.close()
    assert worker.proc.poll() is None

    # Every key tenant B's client named (COMMAND GETKEYS asks Redis itself) starts with "tenantB:", and each
    # script ran on tenant B's key base (the scripts derive inbox/result keys from it).
    named: set[str] = set()
    keyless: set[str] = set()
    for args in recording.sent:
        command = str(args[0]).upper()
        if command in ("EVALSHA", "EVAL"):
            numkeys = int(args[2])
            base = args[3 + numkeys]
            assert (base.decode() if isinstance(base, bytes) else base) == "tenantB:{p}:", args[:4]
        try:
            named.update(k.decode() if isinstance(k, bytes) else k for k in real_redis.command_getkeys(*args))
        except redis.ResponseError:
            keyless.add(command)
    assert keyless <= {"SCRIPT LOAD"}, keyless
    assert named and all(k.startswith("tenantB:") for k in named), sorted(k for k in named
                                                                          if not k.startswith("tenantB:"))
    assert "tenantB:{p}:waiting" in named and any(k.startswith("tenantB:{p}:reply:") for k in named)
    # And nothing outside the two tenants' prefixes was written at all.
    stray = [k for k in real_redis.keys("*") if not k.startswith((b"tenantA:", b"tenantB:"))]
    assert stray == []


# -- rediss:// with certificate checks ------------------------------------------------------------------

def _make_certs_openssl(folder: Path, openssl: str) -> None:
    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=redispool test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "server.ext").write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
                                       "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
                                       "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


def _make_certs_cryptography(folder: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redispool test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for IP 127.0.0.1 (only; not "localhost"), signed by it."""
    openssl = shutil.which("openssl")
    if openssl is not None:
        _make_certs_openssl(folder, openssl)
    else:
        try:
            import cryptography  # noqa: F401
        except ImportError:
            pytest.skip("neither the openssl CLI nor the cryptography package is available to make certificates")
        _make_certs_cryptography(folder)
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A private redis-server serving only TLS (no client certificates) on a free port; (port, CA file)."""
    require_redis_server()
    ca, cert, key = make_certs(tmp_path)
    port = free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    log = tmp_path / "redis-tls.log"
    args = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), "--daemonize", "no", "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(ca), socket_timeout=1,
                         socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    text = log.read_text(errors="replace")
                    if "Bad directive" in text or "not built with TLS" in text or "TLS support" in text:
                        if IN_CI:
                            pytest.fail(f"redis-server in CI has no TLS support: {text[-500:]}")
                        pytest.skip("this redis-server build has no TLS support")
                    raise RuntimeError(f"TLS redis-server did not start: {text[-2000:]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("TLS redis-server did not answer within 10 s") from None
                time.sleep(0.05)
        yield port, ca
    finally:
        client.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_rediss_round_trip_with_a_private_ca(tls_server):
    port, ca = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={urllib.parse.quote(str(ca))}&ssl_cert_reqs=required"
    worker = redispool.Worker("p", url, concurrency=1).start()
    try:
        with redispool.Pool("p", url) as pool:
            assert pool.submit("t.add", 2, 3).result(10) == 5
            assert pool.submit("t.echo", {"over": "tls"}).result(10) == {"over": "tls"}
            stats = pool.stats()
            assert (stats["slots"], stats["running"], stats["idle"]) == (1, 0, 1)
    finally:
        worker.stop(timeout=10)


def test_rediss_refuses_a_server_certificate_it_cannot_verify(tls_server):
    port, ca = tls_server
    no_retry = redispool.Settings(redis_retry_s=0)
    quoted_ca = urllib.parse.quote(str(ca))
    cases = {
        # certificate checks on (redis-py's default ssl_cert_reqs=required), system CAs only
        "unknown CA": f"rediss://127.0.0.1:{port}/0",
        # the right CA, but the certificate names 127.0.0.1 only, not "localhost"
        "wrong host name": f"rediss://localhost:{port}/0?ssl_ca_certs={quoted_ca}",
    }
    for case, url in cases.items():
        with redispool.Pool("p", url, settings=no_retry) as pool:
            started = time.monotonic()
            with pytest.raises(redispool.RedisPoolError) as info:
                pool.submit_with("t.add", (1, 2), block=False)
            assert time.monotonic() - started < 10, case
            assert isinstance(info.value, redispool.BackendError), case
            assert isinstance(info.value.__cause__, redis.ConnectionError), case
            assert "certificate verify failed" in str(info.value).lower(), (case, str(info.value))
            with pytest.raises(redispool.BackendError):
                pool.stats()
        with pytest.raises(redispool.BackendError):
            redispool.Worker("p", url, concurrency=1).start()
