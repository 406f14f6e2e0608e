"""docs/deploy.md: it shows the files under docs/deploy/ as they are, and the systemd unit's
settings are ones `salas serve` accepts and that agree with the nginx site."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from salas.cli import parse_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
DOC = ROOT / "docs" / "deploy.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def _unit_lines(key: str) -> list[str]:
    text = (DEPLOY / "salas.service").read_text()
    return re.findall(rf"^{key}=(.*)$", text, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("name", "language"),
    [("nginx.conf", "nginx"), ("salas.service", "ini"), ("Caddyfile", "caddy")],
)
def test_doc_shows_each_file_as_it_is(name: str, language: str) -> None:
    """Each file under docs/deploy/ appears whole in deploy.md (the test runs the file)."""
    assert (DEPLOY / name).read_text() in _blocks(language)


def test_unit_settings_are_accepted_by_salas_serve() -> None:
    """The unit's ExecStart and SALAS_* variables parse as `salas serve` settings, and each
    variable is one salas reads (an unknown one would be silently ignored)."""
    known = set(re.findall(r"SALAS_[A-Z_]+", (ROOT / "src" / "salas" / "cli.py").read_text()))
    env = dict(line.split("=", 1) for line in _unit_lines("Environment"))
    assert set(env) <= known
    argv = shlex.split(_unit_lines("ExecStart")[0])
    assert argv[0].endswith("/salas")
    command, settings = parse_settings(argv[1:], env)
    assert command == "serve"
    assert settings.log_format == "json"
    assert settings.forwarded_allow_ips == ("127.0.0.1",)


def test_unit_and_proxies_agree() -> None:
    """nginx and Caddy proxy to the address the unit makes salas listen on."""
    env = dict(line.split("=", 1) for line in _unit_lines("Environment"))
    address = f"{env['SALAS_HOST']}:{env['SALAS_PORT']}"
    assert f"server {address};" in (DEPLOY / "nginx.conf").read_text()
    assert f"reverse_proxy {address} " in (DEPLOY / "Caddyfile").read_text()
    assert env["SALAS_FORWARDED_ALLOW_IPS"] == env["SALAS_HOST"]  # the proxy is local
