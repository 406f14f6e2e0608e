"""A missing service skips the test, or fails it under SALAS_REQUIRE_SERVICES=1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import services
from tests.support.services import require_c_compiler, require_nginx, require_node, unavailable


def test_unavailable_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SALAS_REQUIRE_SERVICES the test is skipped, with the reason."""
    monkeypatch.delenv("SALAS_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no database"):
        unavailable("no database")


def test_unavailable_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """With SALAS_REQUIRE_SERVICES=1 the test fails, with the reason."""
    monkeypatch.setenv("SALAS_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="no database"):
        unavailable("no database")


@pytest.mark.parametrize("require", [require_node, require_c_compiler])
def test_missing_programs_fail_when_services_are_required(
    require: Callable[[], str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Node.js and the C compiler are services too: not on PATH fails under CI."""
    monkeypatch.setenv("SALAS_REQUIRE_SERVICES", "1")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception):
        require()


def test_missing_nginx_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """nginx is a service too: neither on PATH nor in /usr/sbin fails under CI, skips else."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(services, "SBIN", str(tmp_path))
    monkeypatch.setenv("SALAS_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="nginx"):
        require_nginx()
    monkeypatch.delenv("SALAS_REQUIRE_SERVICES")
    with pytest.raises(pytest.skip.Exception, match="nginx"):
        require_nginx()
