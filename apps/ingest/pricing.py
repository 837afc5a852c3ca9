"""Cost from ModelPrice: the longest glob matching the model name, latest valid_from ≤ date."""

import fnmatch
import threading
import time
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ModelPrice

_CACHE_SECONDS = 60
_MILLION = Decimal(1_000_000)
_QUANT = Decimal("0.000001")
_state: dict[str, object] = {"loaded_at": 0.0, "prices": [], "memo": {}}
_lock = threading.Lock()


def _prices() -> list[tuple[str, date, Decimal, Decimal]]:
    now = time.monotonic()
    if now - float(_state["loaded_at"]) > _CACHE_SECONDS:  # type: ignore[arg-type]
        with _lock:
            rows = ModelPrice.objects.values_list("model_pattern", "valid_from", "input_per_million", "output_per_million")
            # Longest pattern first (most specific), then newest price first.
            prices = sorted(
                ((p.lower(), v, i, o) for p, v, i, o in rows), key=lambda r: (-len(r[0]), -r[1].toordinal())
            )
            _state["prices"] = prices
            _state["memo"] = {}  # lookups made against the old prices
            _state["loaded_at"] = now
    return _state["prices"]  # type: ignore[return-value]


def price_for(model: str, at: date | None = None) -> tuple[Decimal, Decimal] | None:
    name = (model or "").lower().split("/")[-1]
    if not name:
        return None
    prices = _prices()
    key = (name, at or date.today())
    memo: dict = _state["memo"]  # type: ignore[assignment]
    if key not in memo:
        memo[key] = _price_lookup(prices, *key)
    return memo[key]


def _price_lookup(prices: list, name: str, on: date) -> tuple[Decimal, Decimal] | None:
    for pattern, valid_from, input_price, output_price in prices:
        if valid_from <= on and fnmatch.fnmatchcase(name, pattern):
            return input_price, output_price
    return None


def cost_for(model: str, input_tokens: int, output_tokens: int, at: datetime | date | None = None) -> Decimal:
    """USD cost of a call; zero for a model without a known price."""
    on = at.date() if isinstance(at, datetime) else at
    price = price_for(model, on)
    if price is None:
        return Decimal(0)
    input_price, output_price = price
    cost = (Decimal(input_tokens) * input_price + Decimal(output_tokens) * output_price) / _MILLION
    return cost.quantize(_QUANT, rounding=ROUND_HALF_UP)


def pricing_cache_clear() -> None:
    """Forget this process's copy of the prices; the next lookup reloads them. Saving or
    deleting a ModelPrice does this; tests call it because rolled-back rows send no signal."""
    _state["loaded_at"] = 0.0


@receiver([post_save, post_delete], sender=ModelPrice)
def _forget_prices(**_kwargs: object) -> None:
    pricing_cache_clear()
