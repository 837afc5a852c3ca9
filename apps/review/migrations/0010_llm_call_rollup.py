"""The LLM-call rollup (HourlyLLMCallStats, HourlyLLMCallLatencyBucket) and the triggers that
keep it exact.

Like the turn triggers of 0004, every insert, update and delete of an LLM call logs its hour as
a StaleHour, whatever wrote it; a call of no chatbot (chatmon's own fleet-wide embeddings and
labels) logs chatbot_id 0. PostgreSQL: statement-level triggers with transition tables (one small
INSERT per statement); SQLite: row-level triggers.

The hours already summed hold no LLM-call rows yet, so the migration marks every such hour that
has calls stale: until the next refresh re-sums them (beat, within a minute) they are read live,
exactly as before.
"""

import importlib
from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models

_0004 = importlib.import_module("apps.review.migrations.0004_turn_change_triggers")

POSTGRES_FORWARD = """
CREATE FUNCTION review_llm_call_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT DISTINCT COALESCE(chatbot_id, 0), date_trunc('hour', "timestamp", 'UTC') FROM new_calls;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT COALESCE(chatbot_id, 0), date_trunc('hour', "timestamp", 'UTC') FROM new_calls
        UNION SELECT COALESCE(chatbot_id, 0), date_trunc('hour', "timestamp", 'UTC') FROM old_calls;
    ELSE
        INSERT INTO review_stalehour (chatbot_id, hour)
        SELECT DISTINCT COALESCE(chatbot_id, 0), date_trunc('hour', "timestamp", 'UTC') FROM old_calls;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_llm_call_inserted AFTER INSERT ON conversations_llmcall
    REFERENCING NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION review_llm_call_changed();
CREATE TRIGGER review_llm_call_updated AFTER UPDATE ON conversations_llmcall
    REFERENCING OLD TABLE AS old_calls NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION review_llm_call_changed();
CREATE TRIGGER review_llm_call_deleted AFTER DELETE ON conversations_llmcall
    REFERENCING OLD TABLE AS old_calls FOR EACH STATEMENT EXECUTE FUNCTION review_llm_call_changed();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS review_llm_call_inserted ON conversations_llmcall;
DROP TRIGGER IF EXISTS review_llm_call_updated ON conversations_llmcall;
DROP TRIGGER IF EXISTS review_llm_call_deleted ON conversations_llmcall;
DROP FUNCTION IF EXISTS review_llm_call_changed();
"""

_SQLITE_HOUR = _0004._SQLITE_HOUR
SQLITE_FORWARD = [
    f"""CREATE TRIGGER review_llm_call_inserted AFTER INSERT ON conversations_llmcall BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour) VALUES (COALESCE(NEW.chatbot_id, 0), {_SQLITE_HOUR.format(row="NEW")});
    END""",
    f"""CREATE TRIGGER review_llm_call_updated AFTER UPDATE ON conversations_llmcall BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour) VALUES (COALESCE(NEW.chatbot_id, 0), {_SQLITE_HOUR.format(row="NEW")});
        INSERT INTO review_stalehour (chatbot_id, hour) SELECT COALESCE(OLD.chatbot_id, 0), {_SQLITE_HOUR.format(row="OLD")}
            WHERE OLD.chatbot_id IS NOT NEW.chatbot_id OR {_SQLITE_HOUR.format(row="OLD")} != {_SQLITE_HOUR.format(row="NEW")};
    END""",
    f"""CREATE TRIGGER review_llm_call_deleted AFTER DELETE ON conversations_llmcall BEGIN
        INSERT INTO review_stalehour (chatbot_id, hour) VALUES (COALESCE(OLD.chatbot_id, 0), {_SQLITE_HOUR.format(row="OLD")});
    END""",
]
SQLITE_REVERSE = [f"DROP TRIGGER IF EXISTS review_llm_call_{event}" for event in ("inserted", "updated", "deleted")]


def mark_summed_hours_with_calls(apps, schema_editor) -> None:
    """Every summed hour that has LLM calls becomes stale, so the next refresh adds their rows."""
    state = apps.get_model("review", "HourlyStatsState").objects.filter(pk=1).first()
    if state is None or state.materialized_until is None:
        return
    calls = apps.get_model("conversations", "LLMCall")._meta.db_table
    stale = apps.get_model("review", "StaleHour")._meta.db_table
    hour = "date_trunc('hour', \"timestamp\", 'UTC')" if schema_editor.connection.vendor == "postgresql" else (
        "strftime('%%Y-%%m-%%d %%H:00:00', \"timestamp\")")
    schema_editor.execute(
        f"INSERT INTO {stale} (chatbot_id, hour) SELECT DISTINCT COALESCE(chatbot_id, 0), {hour} FROM {calls}"
        " WHERE \"timestamp\" < %s",
        params=[state.materialized_until],
    )


class Migration(migrations.Migration):

    dependencies = [
        ('chatbots', '0005_chatbot_conversation_judge_settings'),
        ('review', '0009_conversation_channel_row_trigger'),
        ('conversations', '0016_conversation_activity_flagged_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='HourlyLLMCallLatencyBucket',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('model', models.CharField(blank=True, max_length=100)),
                ('function_name', models.CharField(blank=True, max_length=200)),
                ('bucket', models.SmallIntegerField()),
                ('calls', models.PositiveIntegerField()),
                ('chatbot', models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='chatbots.chatbot')),
            ],
            options={
                'indexes': [models.Index(fields=['hour'], name='hourly_llm_latency_hour')],
            },
        ),
        migrations.CreateModel(
            name='HourlyLLMCallStats',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('model', models.CharField(blank=True, max_length=100)),
                ('function_name', models.CharField(blank=True, max_length=200)),
                ('calls', models.PositiveIntegerField(default=0)),
                ('input_tokens', models.BigIntegerField(default=0)),
                ('output_tokens', models.BigIntegerField(default=0)),
                ('cost', models.DecimalField(decimal_places=6, default=0, max_digits=24)),
                ('errors', models.PositiveIntegerField(default=0)),
                ('timed', models.PositiveIntegerField(default=0)),
                ('duration_sum', models.BigIntegerField(default=0)),
                ('chatbot', models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='chatbots.chatbot')),
            ],
            options={
                'verbose_name': 'hourly LLM-call stats',
                'verbose_name_plural': 'hourly LLM-call stats',
                'indexes': [models.Index(fields=['hour'], name='hourly_llm_call_stats_hour')],
            },
        ),
        # The refresh's scratch rows (temporary tables it creates per batch; no table here).
        migrations.CreateModel(
            name='SpanLLMCall',
            fields=[
                ('model', models.CharField(blank=True, max_length=100)),
                ('function_name', models.CharField(blank=True, max_length=200)),
                ('input_tokens', models.PositiveIntegerField(default=0)),
                ('output_tokens', models.PositiveIntegerField(default=0)),
                ('cost_usd', models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=16)),
                ('success', models.BooleanField(default=True)),
                ('duration_ms', models.PositiveIntegerField(blank=True, null=True)),
                ('id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('chatbot_id', models.BigIntegerField(null=True)),
                ('hour', models.DateTimeField()),
            ],
            options={
                'db_table': 'review_spanllmcall',
                'managed': False,
            },
        ),
        migrations.CreateModel(
            name='SpanTurn',
            fields=[
                ('channel', models.CharField(blank=True, max_length=32)),
                ('model', models.CharField(blank=True, max_length=100)),
                ('intent', models.CharField(blank=True, max_length=200)),
                ('release', models.CharField(blank=True, help_text='The bot or prompt version that answered.', max_length=100)),
                ('total_tokens', models.PositiveBigIntegerField(default=0)),
                ('total_cost_usd', models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=24)),
                ('has_error', models.BooleanField(default=False)),
                ('fallback_used', models.BooleanField(default=False)),
                ('is_flagged', models.BooleanField(default=False)),
                ('thumbs_up', models.PositiveIntegerField(default=0)),
                ('thumbs_down', models.PositiveIntegerField(default=0)),
                ('judge_overall', models.FloatField(blank=True, help_text='Latest completed judge overall (0–10).', null=True)),
                ('judge_hallucination', models.BooleanField(blank=True, null=True)),
                ('latency_ms', models.PositiveIntegerField(blank=True, null=True)),
                ('risk_level', models.CharField(choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], default='low', max_length=10)),
                ('id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('chatbot_id', models.BigIntegerField(null=True)),
                ('hour', models.DateTimeField()),
            ],
            options={
                'db_table': 'review_spanturn',
                'managed': False,
            },
        ),
        migrations.RunPython(
            _0004._run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _0004._run({"postgresql": POSTGRES_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
        migrations.RunPython(mark_summed_hours_with_calls, migrations.RunPython.noop),
    ]
