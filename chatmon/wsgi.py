import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse to serve with a public or weak key (apps/core/checks.py).
from apps.core.checks import secret_keys_enforce  # noqa: E402

secret_keys_enforce()

from chatmon.startup import collector_freeze  # noqa: E402

collector_freeze()
