"""The Redis cache backend fails open: with Redis unreachable every operation answers as a miss."""

from prometheus_client import REGISTRY

from apps.core.cache import FailOpenRedisCache
from tests.support.tcp_proxy import closed_port


def _failures() -> float:
    return REGISTRY.get_sample_value("chatmon_redis_failures_total", {"kind": "cache"}) or 0.0


def test_an_unreachable_redis_is_a_miss_counted_once_per_breaker_window(settings):
    settings.REDIS_CIRCUIT_BREAKER_SECONDS = 60
    cache = FailOpenRedisCache(f"redis://127.0.0.1:{closed_port()}/0", {"OPTIONS": {"socket_connect_timeout": 0.05}})
    before = _failures()

    assert cache.get("k", "default") == "default"
    assert cache.add("throttle", 1) is True  # a counter starts at one: the throttle allows
    assert cache.incr("throttle") == 1
    assert cache.incr_window("throttle", 60) == 1  # the one-round-trip throttle count allows too
    assert cache.get_many(["a", "b"]) == {}
    assert cache.set("k", 1) is None and cache.delete("k") is False and cache.has_key("k") is False
    assert cache.get_or_set("k", lambda: 7) == 7
    # One connection attempt; the rest were answered by the open breaker.
    assert _failures() == before + 1


def test_the_breaker_closes_again_and_redis_is_tried(settings):
    settings.REDIS_CIRCUIT_BREAKER_SECONDS = 0
    cache = FailOpenRedisCache(f"redis://127.0.0.1:{closed_port()}/0", {})
    before = _failures()
    cache.get("a")
    cache.get("b")
    assert _failures() == before + 2



def test_incr_window_counts_in_one_round_trip_and_expires():
    """Against the real Redis of REDIS_URL (skipped without one): 1, 2, 3 with an expiry set on
    the first count and not pushed back by the next ones."""
    import os

    import pytest

    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis (REDIS_URL)")
    cache = FailOpenRedisCache(url, {"KEY_PREFIX": "test-incr-window"})
    cache.delete("window")
    assert [cache.incr_window("window", 30) for _ in range(3)] == [1, 2, 3]
    client = cache._cache.get_client(write=True)
    redis_key = cache.make_and_validate_key("window")
    assert 0 < client.ttl(redis_key) <= 30
    assert cache.get("window") == 3  # the counter stays readable through the cache API
    cache.delete("window")
