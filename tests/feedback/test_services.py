"""The feedback service: counters stay exact under changes, deletes and concurrent votes."""


import pytest

from apps.conversations.models import Conversation, Turn
from apps.feedback.models import Feedback
from apps.feedback.services import feedback_delete, feedback_submit
from tests.conftest import require_postgres
from tests.factories import make_conversation, make_turn
from tests.support.threads import raised, run_together


def _totals(conversation_id):
    conversation = Conversation.objects.get(pk=conversation_id)
    turns = Turn.objects.filter(conversation_id=conversation_id)
    return {
        "conversation": (conversation.thumbs_up, conversation.thumbs_down),
        "turns": (sum(t.thumbs_up for t in turns), sum(t.thumbs_down for t in turns)),
        "rows": (
            Feedback.objects.filter(turn__conversation_id=conversation_id, rating="up").count(),
            Feedback.objects.filter(turn__conversation_id=conversation_id, rating="down").count(),
        ),
    }


@pytest.mark.django_db
def test_counters_match_the_rows_after_a_sequence_of_votes(turn):
    other = make_turn(turn.conversation, external_id="t-2")
    script = [
        (turn, "a", "up"),
        (turn, "b", "down"),
        (other, "a", "down"),
        (turn, "a", "down"),
        (turn, "a", "down"),
        (other, "a", "up"),
        (turn, "b", "up"),
        (other, "c", "down"),
    ]
    for target, voter, rating in script:
        feedback_submit(turn_id=target.pk, voter_key=voter, rating=rating)

    totals = _totals(turn.conversation_id)
    assert totals["conversation"] == totals["turns"] == totals["rows"] == (2, 2)


@pytest.mark.django_db
def test_delete_takes_the_vote_out_of_the_counts_and_the_flag(turn):
    result = feedback_submit(turn_id=turn.pk, voter_key="a", rating="down")

    assert feedback_delete(feedback_id=result.feedback.pk) is True
    assert feedback_delete(feedback_id=result.feedback.pk) is False
    turn.refresh_from_db()
    assert (turn.thumbs_down, turn.is_flagged) == (0, False)
    assert _totals(turn.conversation_id)["conversation"] == (0, 0)


@pytest.mark.django_db
def test_other_turns_thumbs_down_keeps_the_conversation_flag(turn):
    other = make_turn(turn.conversation, external_id="t-2")
    feedback_submit(turn_id=turn.pk, voter_key="a", rating="down")
    feedback_submit(turn_id=other.pk, voter_key="a", rating="down")
    feedback_submit(turn_id=turn.pk, voter_key="a", rating="up")

    conversation = Conversation.objects.get(pk=turn.conversation_id)
    assert (conversation.is_flagged, conversation.flag_reasons) == (True, ["thumbs_down"])
    turn.refresh_from_db()
    assert not turn.is_flagged


@pytest.mark.django_db
@pytest.mark.parametrize("redaction", [True, False])
def test_comments_are_redacted_like_the_chatbots_turns(turn, redaction):
    turn.chatbot.pii_redaction_enabled = redaction
    turn.chatbot.save(update_fields=["pii_redaction_enabled"])
    text = "Wrong again, write to jane.doe@example.com or call +44 20 7946 0958"
    feedback_submit(turn_id=turn.pk, voter_key="v", rating="down", comment=text)
    stored = Feedback.objects.get(turn=turn).comment
    if redaction:
        assert stored == "Wrong again, write to [EMAIL] or call [PHONE]"
    else:
        assert stored == text
    # Sending the same comment again is an identical repeat: nothing changes.
    assert feedback_submit(turn_id=turn.pk, voter_key="v", rating="down", comment=text).changed is False


def test_unknown_rating_is_refused(turn):
    with pytest.raises(ValueError):
        feedback_submit(turn_id=turn.pk, voter_key="a", rating="sideways")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_votes_keep_the_summary_exact(chatbot):
    """Many voters change their votes at once on one conversation (PostgreSQL row locks)."""
    require_postgres("real concurrent transactions")
    conversation = make_conversation(chatbot)
    turns = [make_turn(conversation, external_id=f"c-{i}") for i in range(3)]

    def voter(n: int) -> None:
        for i in range(12):
            target = turns[(n + i) % len(turns)]
            feedback_submit(
                turn_id=target.pk,
                voter_key=f"voter-{n}",
                rating="up" if (n + i) % 3 else "down",
            )

    errors = raised(run_together(8, voter))
    assert errors == []
    totals = _totals(conversation.pk)
    assert totals["conversation"] == totals["turns"] == totals["rows"]
    assert sum(totals["rows"]) == Feedback.objects.count() == 8 * 3
