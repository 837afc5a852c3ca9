"""A reviewer sees only their chatbots' rows in every admin that holds chatbot data."""

import pytest

from apps.audit.services import audit_event_record
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from tests.factories import make_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_chatbots_of_data(chatbot, other_chatbot):
    rows = {}
    for bot in (chatbot, other_chatbot):
        turn = make_turn(chatbot=bot, user_message=f"question for {bot.slug}")
        rows[bot.slug] = {
            "feedback": Feedback.objects.create(turn=turn, chatbot=bot, voter_key=f"v-{bot.slug}", rating="down",
                                                comment=f"comment-{bot.slug}"),
            "evaluation": Evaluation.objects.create(turn=turn, chatbot=bot, evaluator="heuristic",
                                                    evaluator_version="heuristic-v1", status="done", overall=3),
            "audit": audit_event_record(action="review.assign", chatbot=bot, target=turn.conversation),
        }
    return rows


@pytest.mark.parametrize(("url", "kind"), [
    ("/admin/feedback/feedback/{}/change/", "feedback"),
    ("/admin/evaluations/evaluation/{}/change/", "evaluation"),
])
def test_reviewer_gets_404_for_another_chatbots_rows(client, bob, two_chatbots_of_data, url, kind):
    client.force_login(bob)
    own = two_chatbots_of_data["shop"][kind]
    foreign = two_chatbots_of_data["hr"][kind]
    assert client.get(url.format(own.pk)).status_code == 200
    assert client.get(url.format(foreign.pk)).status_code == 404


def test_reviewer_lists_hold_only_their_chatbots(client, bob, two_chatbots_of_data):
    client.force_login(bob)
    page = client.get("/admin/feedback/feedback/").content.decode()
    assert "comment-shop" in page and "comment-hr" not in page
    evaluations = client.get("/admin/evaluations/evaluation/")
    assert evaluations.status_code == 200
    assert list(evaluations.context["cl"].queryset.values_list("chatbot__slug", flat=True)) == ["shop"]


def test_superuser_sees_everything(admin_client, two_chatbots_of_data):
    page = admin_client.get("/admin/feedback/feedback/").content.decode()
    assert "comment-shop" in page and "comment-hr" in page


@pytest.mark.parametrize("url", ["/admin/feedback/feedback/", "/admin/evaluations/evaluation/", "/admin/clustering/clusterrun/"])
def test_reviewer_filters_do_not_name_other_chatbots(client, bob, two_chatbots_of_data, url):
    # The stock chatbot filter lists every chatbot; a reviewer must not even learn their names.
    client.force_login(bob)
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Shop assistant" in page and "HR helper" not in page
