import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
application = get_asgi_application()

# ASGI servers run no system checks: refuse to serve with a public or weak key (apps/core/checks.py).
from apps.core.checks import secret_keys_enforce  # noqa: E402

secret_keys_enforce()

from chatmon.startup import collector_freeze  # noqa: E402

collector_freeze()
