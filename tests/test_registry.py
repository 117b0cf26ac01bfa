"""The task registry: names, options, and refusing conflicting registrations."""
from __future__ import annotations

import pytest

import redispool
from redispool import registry


def test_default_name_is_module_and_qualname():
    @redispool.task
    def local_job():
        return 1

    assert local_job.task_name == f"{__name__}.test_default_name_is_module_and_qualname.<locals>.local_job"
    assert registry.lookup(local_job.task_name).fn is local_job
    assert local_job() == 1  # the decorated function is still callable directly


def test_explicit_name_and_options_are_kept():
    @redispool.task(name="reg.custom", retries=2)
    def job():
        return 2

    spec = registry.lookup("reg.custom")
    assert spec is not None and spec.fn is job and spec.options == {"retries": 2}


def test_a_name_taken_by_another_function_is_refused():
    @redispool.task(name="reg.taken")
    def first():
        return 1

    with pytest.raises(redispool.RedisPoolError, match="already registered"):
        @redispool.task(name="reg.taken")
        def second():
            return 2


def test_names_with_the_frame_separator_are_refused():
    with pytest.raises(redispool.RedisPoolError):
        redispool.task(name="a|b")(lambda: None)


def test_unknown_import_is_a_clear_error():
    with pytest.raises(redispool.RedisPoolError, match="no_such_module"):
        registry.import_modules(["no_such_module"])
