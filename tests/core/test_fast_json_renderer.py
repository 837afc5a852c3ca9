"""apps.core.renderers.FastJSONRenderer writes the bytes DRF's JSONRenderer writes (floats: the
same numbers)."""

import json
import random
from decimal import Decimal

from django.utils import timezone
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from apps.core.renderers import FastJSONRenderer


def _value(generator: random.Random, depth: int = 0):
    kind = generator.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return generator.randint(-(2**40), 2**40)
    if kind == 1:
        return generator.choice([0.5, -3.25, 1e-7, 12345.678])
    if kind == 2:
        return "".join(
            generator.choice(["a", "é", "\u2028", '"', "\\", "\n", "\u00a0", "😀", "/", "<"])
            for _ in range(8)
        )
    if kind == 3:
        return generator.choice([True, False, None])
    if kind == 4:
        return ErrorDetail("This field is required.", code="required")
    if kind == 5:
        return generator.choice([Decimal("0.25"), timezone.now()])  # to DRF's encoder
    if kind == 6:
        return [_value(generator, depth + 1) for _ in range(generator.randrange(4))]
    return {f"k{i}": _value(generator, depth + 1) for i in range(generator.randrange(4))}


def test_the_same_bytes_as_drf_on_random_bodies():
    generator = random.Random(22)
    compared_bytes = 0
    for _ in range(2000):
        body = {"results": [_value(generator) for _ in range(3)]}
        fast, drf = FastJSONRenderer().render(body), JSONRenderer().render(body)
        assert json.loads(fast) == json.loads(drf), body
        if b"e-" not in drf:  # Python writes 1e-07 where orjson writes 1e-7: the same number
            assert fast == drf, body
            compared_bytes += 1
    assert compared_bytes > 1000


def test_an_ingest_answer_is_rendered_as_before(post_json):
    response = post_json(
        "/api/v1/ingest/turns",
        {"conversation_id": "c", "turn_id": "t", "user_message": "hi", "bot_response": "héllo"},
    )
    assert response.status_code == 201
    assert response.content == JSONRenderer().render(response.json())
