"""What a serving process does once, after Django is set up and before it takes work."""

import gc

from django.conf import settings
from django.urls import get_resolver

from apps.core.checks import secret_keys_enforce


def web_process_start() -> None:
    """For chatmon/wsgi.py and chatmon/asgi.py. WSGI and ASGI servers run no system checks, so
    refuse to serve with a public or weak key (apps/core/checks.py); then freeze what is loaded."""
    secret_keys_enforce()
    collector_freeze()


def collector_freeze() -> None:
    """Move every object alive now (Django, the apps, their modules and caches: a few hundred
    thousand) into the collector's permanent generation, so the cyclic garbage collector stops
    re-scanning them in every full collection. Ingest allocates enough small objects per batch
    to trigger hundreds of collections; without this a third of a batch's Python CPU was the
    collector walking start-up objects that never die (docs/BENCHMARKS.md). Garbage made from
    here on is collected as before; what is frozen was alive and stays so. `GC_FREEZE_AT_START=0`
    turns it off."""
    if not settings.GC_FREEZE_AT_START:
        return
    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view now, to freeze them too
    gc.collect()  # what is already garbage is freed, not frozen
    gc.freeze()
