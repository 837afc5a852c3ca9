"""Column sizes that hold the sums of the ingest maxima (issue 15 §4): a cost of 1,000,000 USD
(the documented maximum) overflowed numeric(12,6); a turn of 100 such calls and a conversation
of a few overflowed their totals; 108 calls of 10 M tokens overflowed a turn's 32-bit token total.

On PostgreSQL this rewrites conversations_turn and conversations_llmcall (integer → bigint,
smallint → integer); on SQLite Django rebuilds the tables, which drops the review app's turn
triggers: review 0005_wider_hourly_cost re-creates them.
"""

from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0007_turn_corrected_answer'),
    ]

    operations = [
        migrations.AlterField(
            model_name='conversation',
            name='cost_usd',
            field=models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=24),
        ),
        migrations.AlterField(
            model_name='llmcall',
            name='cost_usd',
            field=models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=16),
        ),
        migrations.AlterField(
            model_name='turn',
            name='cost_usd',
            field=models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=16),
        ),
        migrations.AlterField(
            model_name='turn',
            name='thumbs_down',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name='turn',
            name='thumbs_up',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name='turn',
            name='total_cost_usd',
            field=models.DecimalField(decimal_places=6, default=Decimal('0'), max_digits=24),
        ),
        migrations.AlterField(
            model_name='turn',
            name='total_tokens',
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
