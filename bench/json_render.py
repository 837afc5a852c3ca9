"""The bot API's response rendering: DRF's JSONRenderer against apps.core.renderers.FastJSONRenderer.

    .venv/bin/python bench/json_render.py      # a 207 body of 1,000 results, best of 30

Prints CPU-s per 1,000 rendered results (no database, no server).
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatmon.settings",
            "DEBUG": "1",
            "DATABASE_URL": "",
            "REDIS_URL": "",
        }
    )
    import django

    django.setup()
    from rest_framework.renderers import JSONRenderer

    from apps.core.renderers import FastJSONRenderer

    item = {
        "index": 0,
        "status": 201,
        "id": 123456789,
        "conversation": "bench-1-22",
        "turn_id": "bench-1-22-3",
        "risk_score": 0,
        "risk_level": "low",
        "is_flagged": False,
        "flag_reasons": [],
        "feedback_token": "x" * 90,
    }
    body = {"results": [dict(item, index=i) for i in range(1000)]}
    for name, renderer in (
        ("DRF JSONRenderer", JSONRenderer()),
        ("FastJSONRenderer", FastJSONRenderer()),
    ):
        timings = []
        for _ in range(30):
            started = time.process_time()
            renderer.render(body)
            timings.append(time.process_time() - started)
        print(f"{name:>17}: {min(timings):.5f} CPU-s per 1,000 results")


if __name__ == "__main__":
    main()
