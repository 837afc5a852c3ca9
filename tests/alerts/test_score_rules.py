"""Alert rules on outcomes and on any score by name: "average of faithfulness over 60 min below
0.7" fires, notifies the real webhook receiver and resolves; a rule without the name is refused."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.alerts.models import AlertRule
from apps.scores.models import Score
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db


def _score(chatbot, name, value, at):
    conversation = make_conversation(chatbot)
    Score.objects.create(chatbot=chatbot, conversation=conversation, name=name, value=value,
                         data_type="boolean" if name in ("converted", "resolved", "handed_off") else "numeric",
                         timestamp=at)


def test_average_of_a_named_score_fires_and_resolves(chatbot, make_rule, run_check, webhook_channel, receiver, now):
    rule = make_rule(name="faithfulness low", chatbot=chatbot, metric="score_average", score_name="faithfulness",
                     comparison="lt", threshold=0.7, window_minutes=60, min_samples=3, channels=[webhook_channel])
    for value in (0.4, 0.6, 0.9):
        _score(chatbot, "faithfulness", value, now - timedelta(minutes=10))
    _score(chatbot, "csat", 1, now - timedelta(minutes=10))  # another score: not averaged
    [outcome] = run_check(now)
    assert outcome.transition == "fired" and outcome.value == pytest.approx(0.6333, abs=1e-4)
    assert outcome.sample_size == 3
    body = receiver.requests[0].json()
    assert body["kind"] == "firing" and body["metric"] == "score_average"
    assert "Average of score faithfulness" in AlertRule.objects.get(pk=rule.pk).describe_condition()
    for value in (1.0, 1.0, 1.0):
        _score(chatbot, "faithfulness", value, now + timedelta(minutes=5))
    [outcome] = run_check(now + timedelta(minutes=10))
    assert outcome.transition == "resolved"


def test_an_outcome_rule_counts_conversations(chatbot, make_rule, run_check, now):
    make_rule(chatbot=chatbot, metric="handoff_rate", comparison="gt", threshold=40, window_minutes=60, min_samples=2)
    for value in (1.0, 1.0, 0.0):
        _score(chatbot, "handed_off", value, now - timedelta(minutes=5))
    [outcome] = run_check(now)
    assert (outcome.value, outcome.sample_size, outcome.transition) == (pytest.approx(66.6667), 3, "fired")


def test_a_score_rule_needs_the_score_name(chatbot, make_rule, run_check, now):
    rule = AlertRule(name="no name", metric="score_average", threshold=1, comparison="lt")
    with pytest.raises(ValidationError, match="score"):
        rule.full_clean()
    made = make_rule(metric="score_average", score_name="")  # created behind the form's back
    [outcome] = run_check(now)
    assert outcome.state == "error" and "score name" in outcome.error
    assert AlertRule.objects.get(pk=made.pk).state == "error"
