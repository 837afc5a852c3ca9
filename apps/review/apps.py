import importlib

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def _sqlite_turn_triggers_ensure(*, using: str, **_kwargs: object) -> None:
    """Re-create the SQLite turn triggers of migration 0004 after every migrate.

    SQLite cannot alter most columns in place: Django rebuilds the table, and the rebuild drops
    the table's triggers. Any later migration of conversations_turn (in any app) would silently
    stop the hourly rollup from seeing changes; re-creating them here (idempotent) closes that
    for good. PostgreSQL keeps triggers across ALTER TABLE and is left alone.
    """
    connection = connections[using]
    if connection.vendor != "sqlite" or "conversations_turn" not in connection.introspection.table_names():
        return
    triggers = importlib.import_module("apps.review.migrations.0004_turn_change_triggers")
    with connection.cursor() as cursor:
        for statement in triggers.SQLITE_REVERSE + triggers.SQLITE_FORWARD:
            cursor.execute(statement)


class ReviewConfig(AppConfig):
    name = "apps.review"
    label = "review"

    def ready(self) -> None:
        from . import metrics  # noqa: F401 - registers its /metrics gauges

        post_migrate.connect(_sqlite_turn_triggers_ensure, sender=self, dispatch_uid="review-sqlite-turn-triggers")
