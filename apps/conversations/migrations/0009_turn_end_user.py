"""Turn.end_user_hash: the end user of each turn, so erasure can remove one user's turns of a
conversation shared with others. Existing turns take their conversation's end user, the only
one recorded before (a conversation's later users were not stored, so cannot be told apart)."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def turns_end_user_backfill(apps, schema_editor):
    Conversation = apps.get_model("conversations", "Conversation")
    Turn = apps.get_model("conversations", "Turn")
    first_user = Conversation.objects.filter(pk=OuterRef("conversation_id")).values("end_user_hash")[:1]
    Turn.objects.filter(conversation__end_user_hash__gt="").update(end_user_hash=Subquery(first_user))


class Migration(migrations.Migration):

    dependencies = [
        ("chatbots", "0001_initial"),
        ("conversations", "0008_wider_totals"),
    ]

    operations = [
        migrations.AddField(
            model_name="turn",
            name="end_user_hash",
            field=models.CharField(
                blank=True, default="", help_text="HMAC-SHA256 of this turn's end-user id (never the raw id).",
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="conversation",
            name="end_user_hash",
            field=models.CharField(
                blank=True, help_text="HMAC-SHA256 of the first end user's id (never the raw id).", max_length=64
            ),
        ),
        migrations.RunPython(turns_end_user_backfill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="turn",
            index=models.Index(
                condition=models.Q(("end_user_hash", ""), _negated=True), fields=["chatbot", "end_user_hash"],
                name="turn_chatbot_end_user",
            ),
        ),
    ]
