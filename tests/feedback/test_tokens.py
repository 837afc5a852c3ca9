import time
from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone

from apps.feedback.tokens import SALT, FeedbackTokenError, feedback_token_for, feedback_token_parse


def test_round_trip():
    claims = feedback_token_parse(feedback_token_for(turn_id=41, chatbot_id=7))
    assert (claims.turn_id, claims.chatbot_id) == (41, 7)


def test_issued_at_makes_the_token_stable_and_starts_the_expiry(settings):
    issued = timezone.now() - timedelta(days=1)
    first = feedback_token_for(turn_id=1, chatbot_id=2, issued_at=issued)
    assert first == feedback_token_for(turn_id=1, chatbot_id=2, issued_at=issued)
    assert feedback_token_parse(first).turn_id == 1

    settings.FEEDBACK_TOKEN_MAX_AGE_SECONDS = 3600
    with pytest.raises(FeedbackTokenError) as error:
        feedback_token_parse(first)
    assert error.value.expired


def test_other_signed_values_of_the_project_do_not_pass():
    # Same key, different salt: e.g. a session or password-reset style value.
    foreign = signing.dumps([1, 2], salt="something.else")
    with pytest.raises(FeedbackTokenError) as error:
        feedback_token_parse(foreign)
    assert not error.value.expired


@pytest.mark.parametrize("payload", [{"turn": 1}, [1], [1, 2, 3], ["1", "2"], [True, 2], 5, None])
def test_well_signed_but_malformed_payloads_are_invalid(payload):
    token = signing.dumps(payload, salt=SALT)
    with pytest.raises(FeedbackTokenError):
        feedback_token_parse(token)


@pytest.mark.parametrize("token", ["", "abc", "a:b:c", "é:ü", None, 12])
def test_garbage_is_invalid(token):
    with pytest.raises(FeedbackTokenError):
        feedback_token_parse(token)


def test_old_tokens_survive_a_secret_key_rotation(settings):
    token = feedback_token_for(turn_id=3, chatbot_id=4)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-" + str(time.time())
    assert feedback_token_parse(token).turn_id == 3
