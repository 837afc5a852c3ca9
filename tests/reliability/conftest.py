import os

import pytest
from django.db import connection

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture
def postgres(transactional_db):
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("reliability tests need PostgreSQL in CI (set DATABASE_URL)")
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://…)")
    return connection


@pytest.fixture
def redis_url(settings):
    url = os.environ.get("REDIS_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("reliability tests need Redis in CI (set REDIS_URL)")
        pytest.skip("needs Redis (REDIS_URL=redis://…)")
    return url
