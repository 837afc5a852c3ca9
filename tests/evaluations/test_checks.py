import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apps.evaluations.checks import judge_settings_check


def test_openai_backend_without_key_warns(settings):
    settings.JUDGE_BACKEND = "openai"
    settings.OPENAI_API_KEY = ""

    assert [m.id for m in judge_settings_check()] == ["evaluations.W001"]


def test_unknown_backend_is_an_error(settings):
    settings.JUDGE_BACKEND = "gpt-magic"

    assert [m.id for m in judge_settings_check()] == ["evaluations.E001"]
    with pytest.raises(SystemCheckError, match="evaluations.E001"):
        call_command("check")


def test_default_test_configuration_is_clean(settings):
    assert judge_settings_check() == []
