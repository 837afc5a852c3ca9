"""Public list prices per 1M tokens (USD), standard tier, as published by the providers in 2025.

Patterns are globs; the longest matching pattern wins (`gpt-4o-mini*` before `gpt-4o*`).
Edit or add rows in the admin when prices change; `valid_from` keeps history.
"""

import datetime
from decimal import Decimal

from django.db import migrations

VALID_FROM = datetime.date(2025, 8, 1)
PRICES = [
    # provider, pattern, input, output
    ("openai", "gpt-5*", "1.25", "10.00"),
    ("openai", "gpt-5-mini*", "0.25", "2.00"),
    ("openai", "gpt-5-nano*", "0.05", "0.40"),
    ("openai", "gpt-4.1*", "2.00", "8.00"),
    ("openai", "gpt-4.1-mini*", "0.40", "1.60"),
    ("openai", "gpt-4.1-nano*", "0.10", "0.40"),
    ("openai", "gpt-4o*", "2.50", "10.00"),
    ("openai", "gpt-4o-mini*", "0.15", "0.60"),
    ("openai", "o1*", "15.00", "60.00"),
    ("openai", "o1-mini*", "1.10", "4.40"),
    ("openai", "o3*", "2.00", "8.00"),
    ("openai", "o3-mini*", "1.10", "4.40"),
    ("openai", "o4-mini*", "1.10", "4.40"),
    ("openai", "gpt-4-turbo*", "10.00", "30.00"),
    ("openai", "gpt-4", "30.00", "60.00"),
    ("openai", "gpt-4-0613", "30.00", "60.00"),
    ("openai", "gpt-3.5-turbo*", "0.50", "1.50"),
    ("openai", "text-embedding-3-small", "0.02", "0"),
    ("openai", "text-embedding-3-large", "0.13", "0"),
    ("openai", "text-embedding-ada-002", "0.10", "0"),
    ("anthropic", "claude-opus-4-5*", "5.00", "25.00"),
    ("anthropic", "claude-opus-4*", "15.00", "75.00"),
    ("anthropic", "claude-sonnet-4*", "3.00", "15.00"),
    ("anthropic", "claude-haiku-4-5*", "1.00", "5.00"),
    ("anthropic", "claude-3-7-sonnet*", "3.00", "15.00"),
    ("anthropic", "claude-3-5-sonnet*", "3.00", "15.00"),
    ("anthropic", "claude-3-5-haiku*", "0.80", "4.00"),
    ("anthropic", "claude-3-opus*", "15.00", "75.00"),
    ("anthropic", "claude-3-haiku*", "0.25", "1.25"),
    ("google", "gemini-2.5-pro*", "1.25", "10.00"),
    ("google", "gemini-2.5-flash*", "0.30", "2.50"),
    ("google", "gemini-2.5-flash-lite*", "0.10", "0.40"),
    ("google", "gemini-2.0-flash*", "0.10", "0.40"),
    ("google", "gemini-2.0-flash-lite*", "0.075", "0.30"),
    ("google", "gemini-1.5-pro*", "1.25", "5.00"),
    ("google", "gemini-1.5-flash*", "0.075", "0.30"),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("ingest", "ModelPrice")
    for provider, pattern, input_price, output_price in PRICES:
        ModelPrice.objects.get_or_create(
            model_pattern=pattern,
            valid_from=VALID_FROM,
            defaults={
                "provider": provider,
                "input_per_million": Decimal(input_price),
                "output_per_million": Decimal(output_price),
                "notes": "seeded list price",
            },
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("ingest", "ModelPrice")
    ModelPrice.objects.filter(valid_from=VALID_FROM, notes="seeded list price").delete()


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
