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

