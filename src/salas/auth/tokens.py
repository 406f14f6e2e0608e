"""JWT verification and minting, with PyJWT.

Two kinds of key, exactly one per verifier:

- a shared secret: HS256 (core dependencies only). The secret must be at least 32 bytes
  (RFC 7518 §3.2): tokens travel in URLs and browsers, and a short HMAC secret can be
  guessed offline from any one of them.
- a PEM public key: RS256 for an RSA key, ES256 for a P-256 EC key. This needs the
  ``cryptography`` package, which the ``auth`` extra brings (``pip install 'salas[auth]'``).

The algorithm is fixed by the key and passed to PyJWT explicitly, never read from the
token's header, so ``alg: none`` and an HS256 token signed with the text of an RSA public
key (algorithm confusion) are refused.

``sub`` is required. ``exp`` and ``nbf`` are honoured when present, with a leeway for
clock skew (30 s by default); a token without ``exp`` does not expire, so issuers should
always set one (:func:`mint_token` does). With an issuer or audience configured, the
token's ``iss`` / ``aud`` must be present and match; without an audience configured, a
token that names one is refused (it was meant for another service).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError

from salas._extras import extra_needed
from salas.auth.claims import Claims
from salas.auth.errors import AuthError

__all__ = ["MAX_TOKEN_LENGTH", "MIN_SECRET_BYTES", "TokenVerifier", "mint_token"]

# Checked before anything is decoded: a few claims and a signature fit in far less.
MAX_TOKEN_LENGTH = 8192
MIN_SECRET_BYTES = 32
DEFAULT_LEEWAY = 30.0

# PyJWT's refusals as the short reasons a client is told. The first match wins:
# InvalidSignatureError is a DecodeError, so it comes before it.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidSignatureError, "bad signature"),
    (InvalidSubjectError, "bad sub"),
    (jwt.InvalidIssuedAtError, "bad iat"),
    (jwt.DecodeError, "malformed"),
)


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long (it is {len(key)}); "
            'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return key


def _public_key(pem: str | bytes) -> tuple[Any, str]:
    """The key object of a PEM public key and the one algorithm it verifies."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError as exc:
        raise ImportError(
            extra_needed("A JWT public key (RS256/ES256)", "auth"), name="cryptography"
        ) from exc
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"an RSA key of {key.key_size} bits is too weak (2048 at least)")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"ES256 needs a P-256 key, not {key.curve.name}")
        return key, "ES256"
    raise ValueError(f"unsupported public key type {type(key).__name__} (RSA or P-256 EC)")


class TokenVerifier:
    """Checks tokens and returns their :class:`~salas.auth.claims.Claims`.

    Args:
        secret: The HS256 shared secret (at least 32 bytes).
        public_key: A PEM public key (text or bytes): RSA for RS256, P-256 EC for ES256.
            Needs the ``auth`` extra.
        issuer: When set, the ``iss`` every token must carry.
        audience: When set, what the token's ``aud`` must name.
        leeway: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat`` (default 30).

    Raises:
        ValueError: Neither or both of ``secret`` and ``public_key``; a short secret; a
            key that cannot be read or is of an unsupported type; a negative leeway.
        ImportError: ``public_key`` without the ``cryptography`` package.

    Attributes:
        algorithm: ``"HS256"``, ``"RS256"`` or ``"ES256"``: the only one accepted.
        issuer: As given.
        audience: As given.
        leeway: As given.
    """

    def __init__(
        self,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = DEFAULT_LEEWAY,
    ) -> None:
        if (secret is None) == (public_key is None):
            raise ValueError("give exactly one of a JWT secret and a JWT public key")
        if not 0 <= leeway < float("inf"):
            raise ValueError(f"leeway must be 0 or more seconds, not {leeway!r}")
        self._key: Any
        if secret is not None:
            self._key, self.algorithm = _secret_bytes(secret), "HS256"
        else:
            assert public_key is not None
            self._key, self.algorithm = _public_key(public_key)
        self.issuer = issuer or None
        self.audience = audience or None
        self.leeway = float(leeway)
        required = ["sub"]
        if self.issuer is not None:
            required.append("iss")
        if self.audience is not None:
            required.append("aud")
        self._options: Any = {"require": required}

    def __repr__(self) -> str:  # never the key
        return (
            f"TokenVerifier(algorithm={self.algorithm!r}, issuer={self.issuer!r}, "
            f"audience={self.audience!r}, leeway={self.leeway!r})"
        )

    def verify(self, token: object) -> Claims:
        """The claims of ``token`` if it is well-formed, correctly signed and current.

        Args:
            token: The compact JWT, as the client sent it (anything: it is checked).

        Raises:
            AuthError: With a short reason: ``"malformed"``, ``"too large"``, ``"bad
                signature"``, ``"algorithm not allowed"``, ``"expired"``, ``"not yet
                valid"``, ``"wrong audience"``, ``"wrong issuer"``, ``"missing sub"`` (or
                another missing claim), or a claim's own (``"bad role"``, ...).
        """
        if not isinstance(token, str) or not token:
            raise AuthError("malformed")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("too large")
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                options=self._options,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"missing {exc.claim}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(_reason(exc)) from None
        except (ValueError, TypeError):
            # Defence in depth: PyJWT wraps what it parses, but a reason beats a traceback.
            raise AuthError("malformed") from None
        return Claims.from_payload(payload)


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid token"


def mint_token(
    secret: str | bytes,
    sub: str,
    name: str | None = None,
    rooms: Iterable[str] = (),
    role: str = "member",
    ttl: float | None = 8 * 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for these claims, valid from now for ``ttl`` seconds.

    The claims are checked as :class:`TokenVerifier` checks them, so a token this mints is
    one it accepts (with the same secret, issuer and audience).

    Args:
        secret: The shared secret (at least 32 bytes).
        sub: The user id.
        name: The display name (default: the verifier uses ``sub``).
        rooms: Private room names or globs the user may enter.
        role: ``"member"``, ``"moderator"`` or ``"admin"``.
        ttl: Seconds until ``exp``; None for a token that never expires (not advised).
        issuer: The ``iss`` claim, if any.
        audience: The ``aud`` claim, if any.

    Raises:
        ValueError: A short secret, or a ttl that is not positive.
        AuthError: A claim the verifier would refuse (``"bad role"``, ...).
    """
    key = _secret_bytes(secret)
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now}
    if name is not None:
        payload["name"] = name
    room_list = list(rooms)
    if room_list:
        payload["rooms"] = room_list
    if role != "member":
        payload["role"] = role
    if ttl is not None:
        if not 0 < ttl < float("inf"):
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        payload["exp"] = now + max(1, round(ttl))
    if issuer:
        payload["iss"] = issuer
    if audience:
        payload["aud"] = audience
    Claims.from_payload(payload)  # refuse here what every verifier would refuse
    return jwt.encode(payload, key, algorithm="HS256")
