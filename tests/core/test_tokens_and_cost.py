from datetime import date
from decimal import Decimal

import pytest

from apps.conversations.models import Turn
from apps.core import tokens
from apps.core.pricing import cost_for, price_for
from apps.ingest.models import ModelPrice
from tests.conftest import require_shared_data

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/turns"


@pytest.fixture
def fresh_encodings():
    tokens.reset_cache()
    yield
    tokens.reset_cache()


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o-mini", "o200k_base"), ("gpt-4.1", "o200k_base"), ("o3-mini", "o200k_base"), ("gpt-5", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"),
    ("claude-3-5-haiku", "o200k_base"), ("", "o200k_base"),
])
def test_encoding_for_model(model, encoding):
    assert tokens.encoding_name_for(model) == encoding


def test_counts_with_real_bpe_files_when_tokens_are_absent(post_json, settings, fresh_encodings, tmp_path):
    settings.TIKTOKEN_ENCODINGS_DIR = str(require_shared_data("tiktoken"))
    settings.TIKTOKEN_CACHE_DIR = str(tmp_path)
    response = post_json(URL, {"conversation_id": "c", "user_message": "Hello, world!", "bot_response": "tiktoken is great!",
                               "model": "gpt-4o"})
    stored = Turn.objects.get(pk=response.json()["id"])
    import tiktoken

    encoding = tiktoken.get_encoding("o200k_base")
    assert stored.prompt_tokens == len(encoding.encode("Hello, world!")) == 4
    assert stored.completion_tokens == len(encoding.encode("tiktoken is great!"))
    assert not stored.tokens_estimated


def test_cl100k_differs_from_o200k(settings, fresh_encodings, tmp_path):
    settings.TIKTOKEN_ENCODINGS_DIR = str(require_shared_data("tiktoken"))
    settings.TIKTOKEN_CACHE_DIR = str(tmp_path)
    text = "Ünïcödé and emojis 🎉🎉 mixed with code: def f(x): return x**2"
    old, new = tokens.count_tokens(text, model="gpt-4"), tokens.count_tokens(text, model="gpt-4o")
    assert not old.estimated and not new.estimated and old.tokens != new.tokens


def test_provided_counts_are_kept(post_json):
    response = post_json(URL, {"conversation_id": "c", "user_message": "Hi", "tokens": {"prompt": 123, "completion": 45}})
    stored = Turn.objects.get(pk=response.json()["id"])
    assert (stored.prompt_tokens, stored.completion_tokens, stored.tokens_estimated) == (123, 45, False)


def test_unloadable_encoding_falls_back_to_an_estimate(post_json, settings, fresh_encodings, tmp_path):
    settings.TIKTOKEN_ENCODINGS_DIR = str(tmp_path / "nothing-here")
    settings.TIKTOKEN_CACHE_DIR = str(tmp_path / "empty-cache")
    (tmp_path / "empty-cache").mkdir()
    response = post_json(URL, {"conversation_id": "c", "user_message": "x" * 40, "bot_response": "y" * 8, "model": "gpt-4o"})
    assert response.status_code == 201
    stored = Turn.objects.get(pk=response.json()["id"])
    assert (stored.prompt_tokens, stored.completion_tokens, stored.tokens_estimated) == (10, 2, True)


def test_cost_from_seeded_prices():
    # The longest matching pattern wins: gpt-4o-mini* before gpt-4o*.
    assert cost_for("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == Decimal("0.75")
    assert cost_for("gpt-4o", 1_000_000, 0) == Decimal("2.5")
    assert cost_for("claude-3-5-haiku-20241022", 1000, 1000) == Decimal("0.0048")
    assert cost_for("openai/gpt-4.1-mini", 500_000, 0) == Decimal("0.2")
    assert cost_for("some-local-llama", 10_000, 10_000) == Decimal(0)


def test_price_history_uses_the_price_valid_on_the_day():
    ModelPrice.objects.create(model_pattern="acme-1", input_per_million=1, output_per_million=1, valid_from=date(2024, 1, 1))
    ModelPrice.objects.create(model_pattern="acme-1", input_per_million=2, output_per_million=2, valid_from=date(2025, 1, 1))
    assert price_for("acme-1", date(2024, 6, 1)) == (Decimal(1), Decimal(1))
    assert price_for("acme-1", date(2025, 6, 1)) == (Decimal(2), Decimal(2))
    assert price_for("acme-1", date(2023, 6, 1)) is None


def test_cost_is_computed_when_absent_and_kept_when_given(post_json):
    computed = post_json(URL, {"conversation_id": "c", "user_message": "Hi", "model": "gpt-4o",
                               "tokens": {"prompt": 1000, "completion": 1000}})
    given = post_json(URL, {"conversation_id": "c", "user_message": "Hi", "model": "gpt-4o", "cost_usd": 0.42,
                            "tokens": {"prompt": 1000, "completion": 1000}})
    assert Turn.objects.get(pk=computed.json()["id"]).cost_usd == Decimal("0.0125")
    assert Turn.objects.get(pk=given.json()["id"]).cost_usd == Decimal("0.42")
