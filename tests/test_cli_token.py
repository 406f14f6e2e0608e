"""`salas token` (salas.cli): mints a token the verifier accepts, prints the login URL, takes
its settings from flags or SALAS_* variables, and refuses what cannot work."""

from __future__ import annotations

import pytest

from salas.auth import TokenVerifier
from salas.cli import ConfigError, main, parse_ttl, token_main

SECRET = "a-test-secret-of-at-least-32-bytes!"


def run(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> list[str]:
    assert token_main(argv, env) == 0
    return capsys.readouterr().out.splitlines()


def test_mint_then_verify(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed token verifies with the same secret and carries the requested claims."""
    argv = [
        "token",
        "--sub",
        "alice",
        "--name",
        "Alice",
        "--rooms",
        "staff-*, ops",
        "--role",
        "moderator",
        "--ttl",
        "2h",
        "--jwt-secret",
        SECRET,
    ]
    token, url = run(capsys, argv, {})
    claims = TokenVerifier(secret=SECRET).verify(token)
    assert (claims.sub, claims.name, claims.rooms, claims.role) == (
        "alice",
        "Alice",
        ("staff-*", "ops"),
        "moderator",
    )
    assert url == f"http://127.0.0.1:8000/#token={token}"


def test_settings_from_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    """Secret, issuer, audience, host and port come from SALAS_* when no flag is given."""
    env = {
        "SALAS_JWT_SECRET": SECRET,
        "SALAS_JWT_ISSUER": "https://id.example",
        "SALAS_JWT_AUDIENCE": "salas",
        "SALAS_HOST": "chat.example",
        "SALAS_PORT": "9000",
    }
    token, url = run(capsys, ["token", "--sub", "bob", "--port", "9001"], env)
    verifier = TokenVerifier(secret=SECRET, issuer="https://id.example", audience="salas")
    assert verifier.verify(token).name == "bob"
    assert url == f"http://chat.example:9001/#token={token}"


def test_wildcard_host_becomes_localhost(capsys: pytest.CaptureFixture[str]) -> None:
    """A server on 0.0.0.0 is reached at localhost in the printed URL."""
    _, url = run(capsys, ["token", "--sub", "c", "--host", "0.0.0.0", "--jwt-secret", SECRET], {})
    assert url.startswith("http://localhost:8000/#token=")


def test_main_dispatches_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`salas token` through main() reads SALAS_JWT_SECRET from the process environment."""
    monkeypatch.setenv("SALAS_JWT_SECRET", SECRET)
    assert main(["token", "--sub", "dora", "--ttl", "90"]) == 0
    token, _ = capsys.readouterr().out.splitlines()
    exp = TokenVerifier(secret=SECRET).verify(token).exp
    assert exp is not None


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--sub", "a"], {}, "no secret to sign with"),
        (["--sub", "a"], {"SALAS_JWT_PUBLIC_KEY": "key.pem"}, "a public key cannot sign"),
        (["--sub", "a", "--jwt-secret", "short"], {}, "at least 32 bytes"),
        (["--sub", "a", "--role", "root", "--jwt-secret", SECRET], {}, "bad role"),
        (["--sub", "a", "--ttl", "5x", "--jwt-secret", SECRET], {}, "not a duration"),
        (["--sub", "a", "--port", "http", "--jwt-secret", SECRET], {}, "not a port"),
    ],
)
def test_refusals(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], message: str
) -> None:
    """What cannot make a usable token exits 2 with one line naming the problem, no token."""
    assert token_main(["token", *argv], env) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and err.count("\n") == 1


def test_parse_ttl() -> None:
    """Seconds bare or with s/m/h/d; zero, garbage and more than 366 days are refused."""
    assert [parse_ttl(t) for t in ("90", "45s", "30m", "8h", "2d")] == [90, 45, 1800, 28800, 172800]
    for bad in ("", "0", "h", "-5m", "1.5h", "367d", "٣h"):
        with pytest.raises(ConfigError):
            parse_ttl(bad)
