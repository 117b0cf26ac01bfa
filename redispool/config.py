"""Settings shared by pools and workers: where Redis is and how keys and results are kept."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import RedisPoolError
from .keys import check_name
from .protocol import DEFAULT_MAX_MESSAGE_BYTES

DEFAULT_URL = "redis://localhost:6379/0"


def resolve_url(url: str | None) -> str:
    """An explicit url, else env REDISPOOL_URL, else REDIS_URL, else redis://localhost:6379/0."""
    return url or os.environ.get("REDISPOOL_URL") or os.environ.get("REDIS_URL") or DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    """Options every pool and worker of one deployment must agree on.

    prefix: key prefix isolating tenants on one Redis (env REDISPOOL_PREFIX, default "rp").
    result_ttl_s: how long a task's result stays fetchable by id (env REDISPOOL_RESULT_TTL, default 1 day).
    max_message_bytes: largest task message accepted at submit and decoded by workers (default 4 MiB).
    redis_retry_s: how long a submit keeps retrying while Redis is unreachable (default 30 s).
    """

    prefix: str = "rp"
    result_ttl_s: float = 86400.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    redis_retry_s: float = 30.0

    def __post_init__(self) -> None:
        check_name("prefix", self.prefix)
        if not self.result_ttl_s > 0:
            raise RedisPoolError(f"result_ttl_s must be > 0, not {self.result_ttl_s!r}")
        if not self.redis_retry_s >= 0:
            raise RedisPoolError(f"redis_retry_s must be >= 0, not {self.redis_retry_s!r}")
        if not (isinstance(self.max_message_bytes, int) and self.max_message_bytes >= 64):
            raise RedisPoolError(f"max_message_bytes must be an int >= 64, not {self.max_message_bytes!r}")

    @property
    def result_ttl_ms(self) -> int:
        return max(1, int(self.result_ttl_s * 1000))

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        env = os.environ
        values: dict[str, object] = {
            "prefix": env.get("REDISPOOL_PREFIX", "rp"),
            "result_ttl_s": float(env.get("REDISPOOL_RESULT_TTL", "86400")),
            "max_message_bytes": int(env.get("REDISPOOL_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES))),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
