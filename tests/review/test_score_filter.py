"""The review queue and the staff API filter conversations on a score condition ("csat ≤ 2")."""

import pytest

from apps.scores.models import Score
from apps.scores.selectors import ScoreConditionInvalid, score_condition_parse
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db
QUEUE = "/admin/review/flaggedconversation/"


@pytest.fixture
def scored(chatbot):
    rows = {"unhappy": [("csat", 1.0, "numeric"), ("converted", 0.0, "boolean")],
            "meh": [("csat", 2.0, "numeric"), ("lead_quality", None, "categorical")],
            "happy": [("csat", 5.0, "numeric"), ("converted", 1.0, "boolean")],
            "silent": []}
    made = {}
    for key, scores in rows.items():
        conversation = made[key] = make_conversation(chatbot, external_id=key, is_flagged=True, flag_reasons=["risk"])
        for name, value, data_type in scores:
            Score.objects.create(chatbot=chatbot, conversation=conversation, name=name, value=value,
                                 data_type=data_type, category="hot" if data_type == "categorical" else "")
    # Two csat answers on one conversation: listed once.
    Score.objects.create(chatbot=chatbot, conversation=made["unhappy"], name="csat", value=2.0, data_type="numeric")
    return made


@pytest.mark.parametrize(("condition", "expected"), [
    ("csat<=2", {"unhappy", "meh"}),
    ("csat < 2", {"unhappy"}),
    ("csat>=5", {"happy"}),
    ("csat!=5", {"unhappy", "meh"}),
    ("converted=false", {"unhappy"}),
    ("converted=true", {"happy"}),
    ("lead_quality=hot", {"meh"}),
    ("nps<=6", set()),
])
def test_queue_and_api_filter_on_a_score(admin_client, scored, condition, expected):
    queue = admin_client.get(QUEUE, {"score": condition, "status": "all"})
    assert queue.status_code == 200
    assert sorted(c.external_id for c in queue.context["cl"].result_list) == sorted(expected)
    api = admin_client.get("/api/v1/conversations/", {"score": condition})
    assert api.status_code == 200, api.content
    assert sorted(row["external_id"] for row in api.json()["results"]) == sorted(expected)


@pytest.mark.parametrize("condition", ["csat", "csat<=", "csat<=two", "converted>true", "csat<=nan", "x" * 120 + "=1"])
def test_a_bad_condition_is_a_400_not_an_empty_list(admin_client, scored, condition):
    response = admin_client.get("/api/v1/conversations/", {"score": condition})
    assert response.status_code == 400
    assert "score" in response.json()
    with pytest.raises(ScoreConditionInvalid):
        score_condition_parse(condition)
    # The admin says the filter is wrong instead of listing nothing (Django's ?e=1).
    queue = admin_client.get(QUEUE, {"score": condition})
    assert queue.status_code == 302 and "e=1" in queue["Location"]
