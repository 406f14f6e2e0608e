"""docs/deploy/nginx.conf, run by Debian's nginx in front of salas, with the official client.

nginx runs as the current user on free loopback ports, its pid, logs and temporary files in
a temporary folder, with the documented site configuration as it is: only the listen ports,
the upstream's port and the certificate paths are replaced (each must occur exactly once, so
the file cannot drift away from what this test runs). TLS ends at nginx with a certificate
made here; the Node client trusts it and connects from 127.0.0.2, so that the client's
address differs from nginx's (127.0.0.1, the one proxy salas trusts).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import run_node
from tests.support.processes import ServerProcess, free_port, salas_serve
from tests.support.services import ROOT, require_nginx

pytestmark = [pytest.mark.nginx, pytest.mark.node, pytest.mark.timeout(90)]

SITE = ROOT / "docs" / "deploy" / "nginx.conf"
SCENARIO = Path(__file__).parent / "js" / "proxied.js"
CLIENT_ADDRESS = "127.0.0.2"  # nginx and salas are on 127.0.0.1
MODES = ["polling", "websocket", "upgrade"]


def render_site(
    conf: str, *, http_port: int, https_port: int, upstream_port: int, cert: Path, key: Path
) -> str:
    """The documented site with this machine's ports and certificate; AssertionError if a
    placeholder is missing or repeated."""
    replacements = {
        "    listen [::]:80;\n": "",  # loopback IPv6 may be missing in a container
        "    listen [::]:443 ssl;\n": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "/etc/letsencrypt/live/chat.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/chat.example.com/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert conf.count(old) == 1, f"{SITE.name}: expected {old!r} exactly once"
        conf = conf.replace(old, new)
    return conf


def main_conf(tmp: Path, site: Path) -> str:
    """nginx.conf around the site: every file nginx writes is under `tmp`."""
    # "user" only means something to a master run as root: keep its workers as root too.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log notice;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp}\n    include {site};\n}}\n"
    )


def make_certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it as its CA) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Nginx:
    """nginx in the foreground (`daemon off;`) in front of `upstream_port`."""

    def __init__(self, tmp: Path, upstream_port: int, cert: Path, key: Path) -> None:
        self.tmp = tmp
        self.http_port, self.https_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.https_port}"
        site = tmp / "salas.conf"
        site.write_text(
            render_site(
                SITE.read_text(),
                http_port=self.http_port,
                https_port=self.https_port,
                upstream_port=upstream_port,
                cert=cert,
                key=key,
            )
        )
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(main_conf(tmp, site))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        argv = [require_nginx(), "-p", str(self.tmp), "-e", str(self.tmp / "error.log")]
        argv += ["-c", str(self.conf), "-g", "daemon off;"]
        with (self.tmp / "nginx.out").open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"nginx did not start:\n{self.logs()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def logs(self) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            path = self.tmp / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def chat_proxy(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Nginx]:
    """`salas serve --forwarded-allow-ips 127.0.0.1` behind nginx."""
    require_nginx()
    tmp = tmp_path_factory.mktemp("chat")
    server = salas_serve(tmp, "--forwarded-allow-ips", "127.0.0.1", db="memory://")
    nginx = Nginx(tmp, server.port, *certificate)
    try:
        server.start()
        yield nginx.start()
    finally:
        nginx.stop()
        server.stop()


@pytest.fixture(scope="module")
def address_proxy(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Nginx]:
    """tests/apps/address_app.py (trusting 127.0.0.1) behind nginx."""
    require_nginx()
    tmp = tmp_path_factory.mktemp("address")
    port = free_port()
    app = ServerProcess(
        [sys.executable, str(ROOT / "tests" / "apps" / "address_app.py")],
        port,
        tmp / "app.log",
        "/",
    )
    app.env.update(PORT=str(port), FORWARDED_ALLOW_IPS="127.0.0.1")
    nginx = Nginx(tmp, port, *certificate)
    try:
        app.start()
        yield nginx.start()
    finally:
        nginx.stop()
        app.stop()


async def _scenario(proxy: Nginx, cert: Path, mode: str, scenario: str) -> Any:
    result = await run_node(SCENARIO, proxy.url, mode, scenario, str(cert), CLIENT_ADDRESS)
    assert "error" not in result, f"{result['error']}\n{proxy.logs()}"
    return result


@pytest.mark.parametrize("mode", MODES)
async def test_chat_through_nginx(
    chat_proxy: Nginx, certificate: tuple[Path, Path], mode: str
) -> None:
    """Over TLS through nginx, on each transport: connect, join, send; the broadcast returns."""
    result = await _scenario(chat_proxy, certificate[0], mode, "chat")
    assert result["transport"] == ("polling" if mode == "polling" else "websocket")
    assert result["welcome"] is True
    assert result["joined"]["ok"] is True and result["joined"]["channel"] == "lobby"
    sent, received = result["sent"], result["received"]
    assert sent["ok"] is True and sent["client_id"] == f"c-{mode}"
    assert received["channel"] == "lobby" and received["message"] == "through nginx"
    assert received["id"] == sent["id"]


@pytest.mark.parametrize("mode", MODES)
async def test_client_address_through_nginx(
    address_proxy: Nginx, certificate: tuple[Path, Path], mode: str
) -> None:
    """The server sees the client's address (from nginx's X-Forwarded-For), not nginx's nor
    the one the client forged in its own X-Forwarded-For."""
    result = await _scenario(address_proxy, certificate[0], mode, "address")
    assert result["address"] == CLIENT_ADDRESS
    assert result["final"] == ("polling" if mode == "polling" else "websocket")


async def test_origin_through_nginx(chat_proxy: Nginx, certificate: tuple[Path, Path]) -> None:
    """Behind nginx a page of the site's own origin (host:port from X-Forwarded-Host) may
    connect; a foreign origin is refused."""
    result = await _scenario(chat_proxy, certificate[0], "websocket", "origin")
    assert result["own"] is True
    assert result["foreign"]["message"] in ("websocket error", "xhr poll error")


def test_plain_http_redirects_to_https(chat_proxy: Nginx) -> None:
    """The plain-HTTP server answers every request with a redirect to https."""
    request = urllib.request.Request(f"http://127.0.0.1:{chat_proxy.http_port}/room?x=1")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.build_opener(NoRedirect).open(request, timeout=5)
    assert info.value.code == 301
    assert info.value.headers["Location"] == "https://127.0.0.1/room?x=1"
