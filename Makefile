# chatmon — the two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_TIKTOKEN := $(abspath ../shared/data/tiktoken)
export TIKTOKEN_ENCODINGS_DIR ?= $(if $(wildcard $(SHARED_TIKTOKEN)),$(SHARED_TIKTOKEN),)
DEMO_ENV := DEBUG=1 DATABASE_URL= REDIS_URL= OPENAI_API_KEY=
ADMIN_USER ?= admin
# Given by you (`make demo ADMIN_PASSWORD=…` or the environment): set on every run. Otherwise the
# default is only the password of a newly created admin; a rerun keeps the one you have.
ADMIN_PASSWORD_GIVEN := $(filter command line environment environment override,$(origin ADMIN_PASSWORD))
ADMIN_PASSWORD ?= chatmon-demo
ADMIN_PASSWORD_FLAG := $(if $(ADMIN_PASSWORD_GIVEN),--password,--initial-password)
ADMIN_PASSWORD_NOTE := $(if $(ADMIN_PASSWORD_GIVEN),,  (on the first run; later runs keep your password))
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint format migrate worker beat serve bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	@$(DEMO_ENV) $(BIN)/python manage.py ensure_admin --username '$(ADMIN_USER)' $(ADMIN_PASSWORD_FLAG) '$(ADMIN_PASSWORD)'
	LOG_LEVEL=WARNING $(DEMO_ENV) $(BIN)/python manage.py seed_demo --if-empty --api-key http://$(HOST):$(PORT)
	@echo ""
	@echo "  chatmon is running:  http://$(HOST):$(PORT)/admin/"
	@echo "  log in as:           $(ADMIN_USER) / $(ADMIN_PASSWORD)$(ADMIN_PASSWORD_NOTE)"
	@echo "  widget demo:         http://$(HOST):$(PORT)/demo/widget/"
	@echo "  API docs:            http://$(HOST):$(PORT)/api/docs/"
	@echo "  periodic jobs:       in this process (EMBEDDED_SCHEDULER); alerts go to the server log"
	@echo ""
	$(DEMO_ENV) $(BIN)/python manage.py demo_server $(HOST):$(PORT)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate

# Production settings (DEBUG off): needs SECRET_KEY (chatmon.E001 stops gunicorn otherwise; see
# README "Configuration") and, when exposed, nginx in front (deploy/nginx.conf, TRUSTED_PROXY_COUNT=1).
serve: $(STAMP)
	@test -n "$$SECRET_KEY" || test "$$DEBUG" = 1 || { echo 'make serve: set SECRET_KEY (python -c "import secrets; print(secrets.token_urlsafe(64))") or DEBUG=1'; exit 1; }
	$(BIN)/gunicorn chatmon.wsgi:application --bind $(HOST):$(PORT) --workers 2 --threads 4

# Queue names: apps.core.choices.Queue (keep this list in step with it).
worker: $(STAMP)
	$(BIN)/celery -A chatmon worker -Q default,judge,analysis,alerts --loglevel INFO

beat: $(STAMP)
	$(BIN)/celery -A chatmon beat --loglevel INFO

clean:
	rm -rf $(VENV) chatmon.sqlite3 chatmon.sqlite3-* staticfiles .pytest_cache
