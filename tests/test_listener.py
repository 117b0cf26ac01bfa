"""The reply listener's bookkeeping when frames overtake the submitter (no Redis traffic needed)."""
from __future__ import annotations

import fakeredis

from redispool import protocol
from redispool.backend import Backend
from redispool.future import TaskFuture
from redispool.keys import PoolKeys
from redispool.listener import ReplyListener


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
