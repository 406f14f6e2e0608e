"""TokenVerifier and mint_token (salas.auth.tokens): good tokens, every refusal with its
reason, algorithm confusion, key handling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from salas.auth import AuthError, Claims, TokenVerifier, mint_token
from salas.auth.tokens import MAX_TOKEN_LENGTH
from tests.auth.auth_support import (
    OTHER_SECRET,
    SECRET,
    KeyPair,
    ec_pair,
    forge,
    fresh,
    hs,
    rsa_pair,
)


@pytest.fixture(scope="module")
def rsa_keys() -> KeyPair:
    return rsa_pair()


@pytest.fixture(scope="module")
def ec_keys() -> KeyPair:
    return ec_pair()


def refused(verifier: TokenVerifier, token: object) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    return caught.value.reason


# ------------------------------------------------------------------------------------ accepted
def test_good_hs256_token() -> None:
    """A current HS256 token gives its claims, defaults filled in."""
    exp = int(time.time()) + 60
    claims = TokenVerifier(secret=SECRET).verify(hs({"sub": "alice", "exp": exp}))
    assert claims == Claims(sub="alice", name="alice", rooms=(), role="member", exp=float(exp))


def test_rs256_and_es256_keys(rsa_keys: KeyPair, ec_keys: KeyPair) -> None:
    """An RSA public key verifies RS256 tokens, a P-256 key ES256 ones."""
    for keys, algorithm in ((rsa_keys, "RS256"), (ec_keys, "ES256")):
        verifier = TokenVerifier(public_key=keys.public_pem.decode())
        assert verifier.algorithm == algorithm
        claims = verifier.verify(keys.sign(fresh(name="Alice", role="admin")))
        assert (claims.sub, claims.name, claims.role) == ("alice", "Alice", "admin")


def test_token_without_exp_is_accepted() -> None:
    """A token without exp is valid (documented: it never expires) and says exp None."""
    assert TokenVerifier(secret=SECRET).verify(hs({"sub": "bob"})).exp is None


def test_expired_within_leeway_is_accepted() -> None:
    """exp 10 s ago passes with the default 30 s leeway, and not with leeway 0."""
    token = hs({"sub": "alice", "exp": int(time.time()) - 10})
    assert TokenVerifier(secret=SECRET).verify(token).sub == "alice"
    assert refused(TokenVerifier(secret=SECRET, leeway=0), token) == "expired"


def test_issuer_and_audience_that_match() -> None:
    """With issuer and audience configured, a token naming both passes."""
    verifier = TokenVerifier(secret=SECRET, issuer="https://id.example", audience="salas")
    token = hs(fresh(iss="https://id.example", aud=["other", "salas"]))
    assert verifier.verify(token).sub == "alice"


# ------------------------------------------------------------------------------------ refused
def test_expired_beyond_leeway() -> None:
    """exp a minute ago with a 30 s leeway: "expired"."""
    token = hs({"sub": "alice", "exp": int(time.time()) - 60})
    assert refused(TokenVerifier(secret=SECRET), token) == "expired"


def test_nbf_in_the_future() -> None:
    """nbf beyond the leeway: "not yet valid"; within it: accepted."""
    now = int(time.time())
    verifier = TokenVerifier(secret=SECRET)
    assert refused(verifier, hs(fresh(nbf=now + 120))) == "not yet valid"
    assert verifier.verify(hs(fresh(nbf=now + 10))).sub == "alice"


def test_wrong_secret() -> None:
    """A token signed with another secret: "bad signature"."""
    assert refused(TokenVerifier(secret=SECRET), hs(fresh(), OTHER_SECRET)) == "bad signature"


def test_wrong_public_key(rsa_keys: KeyPair) -> None:
    """An RS256 token checked against another RSA key: "bad signature"."""
    other = rsa_pair()
    verifier = TokenVerifier(public_key=other.public_pem)
    assert refused(verifier, rsa_keys.sign(fresh())) == "bad signature"


def test_wrong_audience_and_issuer() -> None:
    """Another aud or iss is refused with its reason; absent ones are missing claims."""
    verifier = TokenVerifier(secret=SECRET, issuer="https://id.example", audience="salas")
    good = {"iss": "https://id.example", "aud": "salas"}
    assert refused(verifier, hs(fresh(**{**good, "aud": "other"}))) == "wrong audience"
    assert refused(verifier, hs(fresh(**{**good, "iss": "https://evil.example"}))) == (
        "wrong issuer"
    )
    assert refused(verifier, hs(fresh(iss="https://id.example"))) == "missing aud"
    assert refused(verifier, hs(fresh(aud="salas"))) == "missing iss"


def test_token_for_another_audience_without_one_configured() -> None:
    """No audience configured: a token that names one was meant for another service."""
    assert refused(TokenVerifier(secret=SECRET), hs(fresh(aud="billing"))) == "wrong audience"


def test_alg_none_is_refused(rsa_keys: KeyPair) -> None:
    """An unsigned ``alg: none`` token is refused by HS and RS verifiers alike."""
    token = forge({"alg": "none", "typ": "JWT"}, fresh(role="admin"), None)
    assert refused(TokenVerifier(secret=SECRET), token) == "algorithm not allowed"
    assert refused(TokenVerifier(public_key=rsa_keys.public_pem), token) == (
        "algorithm not allowed"
    )


def test_hs_token_signed_with_the_public_key_is_refused(
    rsa_keys: KeyPair, ec_keys: KeyPair
) -> None:
    """Algorithm confusion: HS256 keyed with the public key's PEM text never passes."""
    for keys in (rsa_keys, ec_keys):
        token = forge({"alg": "HS256", "typ": "JWT"}, fresh(role="admin"), keys.public_pem)
        assert refused(TokenVerifier(public_key=keys.public_pem), token) == (
            "algorithm not allowed"
        )


def test_rs_token_against_an_es_key(rsa_keys: KeyPair, ec_keys: KeyPair) -> None:
    """A key verifies only its own algorithm: RS256 against a P-256 key is refused."""
    verifier = TokenVerifier(public_key=ec_keys.public_pem)
    assert refused(verifier, rsa_keys.sign(fresh())) == "algorithm not allowed"


def test_oversize_token_is_refused_before_decoding() -> None:
    """A token longer than the cap is "too large", even when correctly signed."""
    token = hs(fresh(pad="x" * MAX_TOKEN_LENGTH))
    assert len(token) > MAX_TOKEN_LENGTH
    assert refused(TokenVerifier(secret=SECRET), token) == "too large"


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.!!!.sig", 42, None, ["a.b.c"], b"a.b.c"],
)
def test_garbage_is_malformed(garbage: object) -> None:
    """Anything that is not a compact JWT string is "malformed", never another error."""
    assert refused(TokenVerifier(secret=SECRET), garbage) == "malformed"


def test_missing_and_bad_sub() -> None:
    """No sub: "missing sub"; a number or an empty one: "bad sub"."""
    verifier = TokenVerifier(secret=SECRET)
    assert refused(verifier, hs({"exp": int(time.time()) + 60})) == "missing sub"
    assert refused(verifier, hs(fresh(sub=7))) == "bad sub"
    assert refused(verifier, hs(fresh(sub="  "))) == "bad sub"


def test_bad_role_is_refused() -> None:
    """A role other than member/moderator/admin refuses the token."""
    assert refused(TokenVerifier(secret=SECRET), hs(fresh(role="root"))) == "bad role"


# ------------------------------------------------------------------------------------ keys
def test_exactly_one_key() -> None:
    """Neither or both of secret and public key is a configuration error."""
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier()
    with pytest.raises(ValueError, match="exactly one"):
        TokenVerifier(secret=SECRET, public_key="x")


def test_short_secret_is_refused() -> None:
    """A secret under 32 bytes cannot be used to verify or to mint."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(secret="short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint_token("short", "alice")


def test_unusable_public_keys() -> None:
    """Not PEM, a P-384 key or a small RSA key: clear configuration errors."""
    with pytest.raises(ValueError, match="not a PEM public key"):
        TokenVerifier(public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError, match="P-256"):
        TokenVerifier(public_key=ec_pair(ec.SECP384R1()).public_pem)
    with pytest.raises(ValueError, match="too weak"):
        TokenVerifier(public_key=rsa_pair(1024).public_pem)


def test_repr_hides_the_key() -> None:
    """The verifier's repr names the algorithm and never shows the secret."""
    text = repr(TokenVerifier(secret=SECRET, audience="salas"))
    assert "HS256" in text and "salas" in text and SECRET not in text


# ------------------------------------------------------------------------------------ minting
def test_minted_token_round_trips() -> None:
    """mint_token's claims come back from verify, exp ttl seconds ahead."""
    before = time.time()
    token = mint_token(
        SECRET,
        "bob",
        name="Bob",
        rooms=["staff-*"],
        role="moderator",
        ttl=600,
        issuer="iss",
        audience="aud",
    )
    claims = TokenVerifier(secret=SECRET, issuer="iss", audience="aud").verify(token)
    assert (claims.sub, claims.name, claims.rooms, claims.role) == (
        "bob",
        "Bob",
        ("staff-*",),
        "moderator",
    )
    assert claims.exp is not None and before + 598 <= claims.exp <= time.time() + 601
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_mint_refuses_what_verify_would_refuse() -> None:
    """A bad role, empty sub or non-positive ttl fails at minting, not at login."""
    with pytest.raises(AuthError, match="bad role"):
        mint_token(SECRET, "bob", role="owner")
    with pytest.raises(AuthError, match="bad sub"):
        mint_token(SECRET, "")
    with pytest.raises(ValueError, match="ttl"):
        mint_token(SECRET, "bob", ttl=0)


WITHOUT_CRYPTOGRAPHY = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Refuse(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "cryptography":
                raise ModuleNotFoundError(f"blocked: {name}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    from salas.auth import TokenVerifier, jwt_auth, mint_token

    token = mint_token("s" * 32, "alice")
    print("hs256:", TokenVerifier(secret="s" * 32).verify(token).sub)
    try:
        jwt_auth(public_key="-----BEGIN PUBLIC KEY-----")
    except ImportError as exc:
        print("public key:", exc)
    """
)


def test_public_key_without_cryptography_names_the_extra() -> None:
    """Without `cryptography`, HS256 works and a public key says to install salas[auth]."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_CRYPTOGRAPHY], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "hs256: alice",
        "public key: A JWT public key (RS256/ES256) needs the 'auth' extra: "
        "pip install 'salas[auth]'",
    ]
