"""A Redis cache that fails open: chatmon's cache holds counters and hints, never the truth.

Every user of the cache (API-key and feedback throttles, the API key's last_used guard, the
dashboard's stats cache, the risk-rule version, django-axes' login lockout) can live without it
for a while, so when Redis is unreachable an operation answers as if the key were absent and
nothing could be stored, instead of raising into the request:

- `get`/`get_many`/`has_key`: the miss (`default`, `{}`, False);
- `add`: True ("stored": a throttle or lockout counter starts at one, so it allows);
- `incr`/`decr`: `delta` (as if counting from zero);
- `set`/`touch`/`delete`/`delete_many`/`set_many`/`clear`: nothing stored (False where a bool is due).

Failures are counted and logged once a minute (apps.core.resilience); after one, the backend
skips Redis for REDIS_CIRCUIT_BREAKER_SECONDS, so a blackholed Redis costs one connect
timeout per process per pause instead of one per cache call.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .resilience import CircuitBreaker, redis_failure_record

# Connection refused/reset, DNS failure, timeouts (BusyLoadingError is a ConnectionError too).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class ReusedClientRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client builds a new `redis.Redis` for every operation, and redis-py
    fills a ~180-entry response-callback table in each one (~0.1 ms, a few percent of a bot
    request). One client per connection pool does the same (clients are thread-safe; the pool
    hands out connections)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[Any, Any] = {}  # connection pool → its client

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class FailOpenRedisCache(RedisCache):
    """django.core.cache.backends.redis.RedisCache whose operations fail open (module docstring)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
        self.breaker = CircuitBreaker()

    def _guarded(self, operation: Any, fallback: Any, *args: Any, **kwargs: Any) -> Any:
        if self.breaker.is_open():
            return fallback
        try:
            return operation(*args, **kwargs)
        except UNREACHABLE as exc:
            self.breaker.trip(settings.REDIS_CIRCUIT_BREAKER_SECONDS)
            redis_failure_record("cache", exc)
            return fallback

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(super().add, True, key, value, timeout, version)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._guarded(super().get, default, key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._guarded(super().set, None, key, value, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(super().touch, False, key, timeout, version)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(super().delete, False, key, version)

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._guarded(super().get_many, {}, keys, version)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(super().has_key, False, key, version)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._guarded(super().incr, delta, key, delta, version)

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        return self._guarded(super().set_many, list(data), data, timeout, version)

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._guarded(super().delete_many, None, keys, version)

    def clear(self) -> bool:
        return self._guarded(super().clear, False)

    def incr_window(self, key: Any, timeout: int, version: int | None = None) -> int:
        """Count one more in a counter that expires `timeout` seconds after its first count, in
        one round trip (SET NX EX and INCR, pipelined); what `add` then `incr` does in two.
        Fails open: 1."""

        def count() -> int:
            redis_key = self.make_and_validate_key(key, version=version)
            pipeline = self._cache.get_client(redis_key, write=True).pipeline(transaction=False)
            pipeline.set(redis_key, 0, ex=timeout, nx=True)
            pipeline.incr(redis_key)
            return pipeline.execute()[1]

        return self._guarded(count, 1)

    def get_and_incr_window(self, key: Any, counter_key: Any, timeout: int, version: int | None = None) -> tuple[Any, int]:
        """`get(key)` and `incr_window(counter_key, timeout)` in one round trip (one pipeline on the
        primary server, which `incr_window` writes to anyway). Fails open: (None, 1)."""

        def both() -> tuple[Any, int]:
            value_key = self.make_and_validate_key(key, version=version)
            counter = self.make_and_validate_key(counter_key, version=version)
            pipeline = self._cache.get_client(counter, write=True).pipeline(transaction=False)
            pipeline.get(value_key)
            pipeline.set(counter, 0, ex=timeout, nx=True)
            pipeline.incr(counter)
            raw, _, used = pipeline.execute()
            return (None if raw is None else self._cache._serializer.loads(raw)), used

        return self._guarded(both, (None, 1))
