# chatmon: one image for web (gunicorn), worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY chatmon ./chatmon
COPY apps ./apps
RUN pip install .

COPY manage.py ./
COPY templates ./templates
COPY static ./static
# Static files are collected at build time and served by WhiteNoise from the web process.
RUN DJANGO_SETTINGS_MODULE=chatmon.settings SECRET_KEY=build-only python manage.py collectstatic --noinput

RUN useradd --system --uid 1000 chatmon && chown -R chatmon /app
USER chatmon
EXPOSE 8000
CMD ["gunicorn", "chatmon.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--access-logfile", "-"]
