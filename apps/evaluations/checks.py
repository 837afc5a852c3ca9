"""System checks: a judge configuration that cannot work is reported at startup, not per turn."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from .backends import BACKENDS


@register()
def judge_settings_check(app_configs: Any = None, **kwargs: Any) -> list:
    problems: list = []
    if settings.JUDGE_BACKEND not in BACKENDS:
        problems.append(Error(
            f"JUDGE_BACKEND={settings.JUDGE_BACKEND!r} is not one of {', '.join(sorted(BACKENDS))}.",
            id="evaluations.E001",
        ))
    elif settings.JUDGE_BACKEND == "openai" and not settings.OPENAI_API_KEY:
        problems.append(Warning(
            "JUDGE_BACKEND is 'openai' but OPENAI_API_KEY is empty: every judgment will fail.",
            hint="Set OPENAI_API_KEY (any non-empty value for servers without keys), or JUDGE_BACKEND=heuristic.",
            id="evaluations.W001",
        ))
    if settings.JUDGE_MAX_ATTEMPTS < 1:
        problems.append(Error("JUDGE_MAX_ATTEMPTS must be at least 1.", id="evaluations.E002"))
    return problems
