import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
application = get_asgi_application()

from chatmon.startup import web_process_start  # noqa: E402

web_process_start()
