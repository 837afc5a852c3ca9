import os

import pytest
from django.db import connection

from tests.conftest import IN_CI, require_postgres


@pytest.fixture
def postgres(transactional_db):
    require_postgres("fault injection")
    return connection


@pytest.fixture
def redis_url(settings):
    url = os.environ.get("REDIS_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("reliability tests need Redis in CI (set REDIS_URL)")
        pytest.skip("needs Redis (REDIS_URL=redis://…)")
    return url
