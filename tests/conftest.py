"""Fixtures every test folder may ask for: the services outside Python, probed once per
session (see tests/support/services.py: skipped when missing, failed under
``SALAS_REQUIRE_SERVICES=1``)."""

from __future__ import annotations

import pytest

from tests.support.services import probe_postgres, probe_redis


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL that accepts a connection (sync: the probe runs its own loop)."""
    return probe_postgres()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL whose server answers."""
    return probe_redis()
