"""Cost of a model call from the price list: the longest glob matching the model name, latest
valid_from ≤ date.

The price list is the ingest app's ModelPrice table. Core sits below every app, so it does not
import it: apps.ingest registers where the rows come from at start-up (`price_list_register`) and
calls `prices_forget()` when a price is saved or deleted. Until then there are no prices and
every cost is zero.
"""

import fnmatch
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

# (model_pattern, valid_from, input_per_million, output_per_million)
PriceRow = tuple[str, date, Decimal, Decimal]

_CACHE_SECONDS = 60
_MILLION = Decimal(1_000_000)
_QUANT = Decimal("0.000001")
_state: dict[str, object] = {"loaded_at": 0.0, "prices": [], "memo": {}}
_lock = threading.Lock()
_price_rows: Callable[[], Iterable[PriceRow]] = tuple


def price_list_register(rows: Callable[[], Iterable[PriceRow]]) -> None:
    """Where the prices are read from (a query; run at most once a minute per process)."""
    global _price_rows
    _price_rows = rows
    prices_forget()


def prices_forget(**_kwargs: object) -> None:
    """Read the price list again on the next lookup (a signal receiver: takes any arguments)."""
    _state["loaded_at"] = 0.0


def _prices() -> list[tuple[str, date, Decimal, Decimal]]:
    now = time.monotonic()
    if now - float(_state["loaded_at"]) > _CACHE_SECONDS:  # type: ignore[arg-type]
        with _lock:
            rows = _price_rows()
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
