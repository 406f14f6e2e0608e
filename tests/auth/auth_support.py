"""Keys and hand-made tokens for the auth tests: key pairs generated with `cryptography`,
and tokens forged byte by byte (``alg: none``, HS256 signed with a public key's PEM) that
PyJWT itself refuses to produce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "a-test-secret-of-at-least-32-bytes!"
OTHER_SECRET = "another-secret-also-32-bytes-long!!"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A compact JWT with this header, signed with HMAC-SHA256 over ``key`` (none: unsigned)."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    signature = (
        b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{_b64(signature)}"


def hs(payload: dict[str, Any], secret: str = SECRET) -> str:
    """An HS256 token of ``payload`` (``sub`` and ``exp`` as given: nothing added)."""
    return jwt.encode(payload, secret, algorithm="HS256")


def fresh(**claims: Any) -> dict[str, Any]:
    """A payload for user alice valid for an hour, with ``claims`` on top."""
    return {"sub": "alice", "exp": int(time.time()) + 3600, **claims}


class KeyPair:
    """A private key (to sign with PyJWT) and its public key as PEM (for the verifier)."""

    def __init__(self, private: Any, algorithm: str) -> None:
        self.private = private
        self.algorithm = algorithm
        self.public_pem: bytes = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, payload: dict[str, Any]) -> str:
        return jwt.encode(payload, self.private, algorithm=self.algorithm)


def rsa_pair(bits: int = 2048) -> KeyPair:
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=bits), "RS256")


def ec_pair(curve: ec.EllipticCurve | None = None) -> KeyPair:
    return KeyPair(ec.generate_private_key(curve or ec.SECP256R1()), "ES256")
