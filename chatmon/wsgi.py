import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
application = get_wsgi_application()

from chatmon.startup import web_process_start  # noqa: E402

web_process_start()
