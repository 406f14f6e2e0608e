"""`jwt_auth`: the Server middleware that admits only sockets with a valid token.

``io.use(jwt_auth(secret=...))`` (or ``public_key=``) reads the token from the CONNECT auth
payload's ``token`` (``io({auth: {token}})``, python-socketio's ``connect(auth={"token":
...})``) or else from an ``Authorization: Bearer`` header of the handshake (for clients
that cannot send an auth payload). A socket without a valid token is refused with
CONNECT_ERROR ``{"message": "unauthorized", "data": {"code": "unauthorized", "reason":
...}}`` before any connection handler runs. An admitted socket has its claims in
``socket.data["user"]`` as a plain dict (JSON, so that connection state recovery can save
it) and is disconnected when its token expires: at ``exp`` plus the verifier's leeway, the
moment the same token would stop being accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from salas.auth.claims import Claims
from salas.auth.errors import AuthError
from salas.auth.expiry import Expiries
from salas.auth.tokens import DEFAULT_LEEWAY, TokenVerifier
from salas.server import ConnectionRefused, Socket

__all__ = [
    "UNAUTHORIZED",
    "JwtAuth",
    "claims_of",
    "jwt_auth",
    "token_from_handshake",
    "unauthorized",
]

logger = logging.getLogger("salas.auth")

UNAUTHORIZED = "unauthorized"


def unauthorized(reason: str) -> ConnectionRefused:
    """The refusal a client gets for a missing or bad token, with ``reason`` for people."""
    return ConnectionRefused(UNAUTHORIZED, {"code": UNAUTHORIZED, "reason": reason})


def token_from_handshake(handshake: Mapping[str, Any]) -> object | None:
    """The token a client presented, as it sent it; None when it sent none.

    The auth payload's ``token`` wins (a ``null`` one counts as absent); else the
    ``Authorization: Bearer <token>`` header (scheme in any case). The value is not
    checked here: :meth:`TokenVerifier.verify` refuses what is not a token.
    """
    auth = handshake.get("auth")
    if isinstance(auth, Mapping) and auth.get("token") is not None:
        token: object = auth["token"]
        return token
    headers = handshake.get("headers")
    header = headers.get("authorization") if isinstance(headers, Mapping) else None
    if not isinstance(header, str):
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None  # another scheme (a proxy's Basic auth, ...) is not a token for us
    return credentials.strip()


def claims_of(socket: Socket) -> Claims | None:
    """The verified claims of a socket admitted by :class:`JwtAuth`; None without them."""
    user = socket.data.get("user")
    if not isinstance(user, Mapping):
        return None
    try:
        return Claims.from_payload(user)
    except AuthError:
        return None


class JwtAuth:
    """A Server middleware: verify the socket's token, or refuse it (see the module).

    Made by :func:`jwt_auth`; an instance is the middleware: ``io.use(JwtAuth(verifier))``.

    Args:
        verifier: What checks the tokens.

    Attributes:
        verifier: As given.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        # When each socket's token runs out, all on one loop timer. Socket has no
        # disconnect hook a middleware may use, and the expiries hold sockets only weakly,
        # so a disconnected socket is collected and its expiry goes with it (`release`
        # cancels one at once).
        self._expiries: Expiries[Socket] = Expiries(self._expire)

    def __call__(self, socket: Socket) -> None:
        """Admit ``socket`` with its claims in ``socket.data["user"]``, or refuse it.

        Raises:
            ConnectionRefused: ``unauthorized``, with the reason in its data.
        """
        token = token_from_handshake(socket.handshake)
        if token is None:
            raise unauthorized("missing token")
        try:
            claims = self.verifier.verify(token)
        except AuthError as exc:
            # DEBUG: refusals are what an attacker can produce at will.
            logger.debug("socket %s refused: %s", socket.id, exc.reason)
            raise unauthorized(exc.reason) from None
        socket.data["user"] = claims.to_dict()
        self._arm(socket, claims)

    def watch(self, socket: Socket) -> None:
        """Disconnect ``socket`` when the token in its ``data["user"]`` expires.

        The middleware does this itself; call it for a socket that skipped the middleware,
        such as one given back by connection state recovery (``socket.recovered``, with
        ``RecoveryOptions.skip_middlewares``). A token already expired disconnects it at
        once; a socket without claims is left alone.
        """
        claims = claims_of(socket)
        if claims is not None:
            self._arm(socket, claims)

    def release(self, socket: Socket) -> None:
        """Cancel the expiry timer of ``socket``, if it has one (e.g. when it disconnects)."""
        self._expiries.cancel(socket)

    @property
    def pending(self) -> int:
        """How many sockets have an expiry timer running."""
        return len(self._expiries)

    def _arm(self, socket: Socket, claims: Claims) -> None:
        self.release(socket)
        if claims.exp is None:
            return  # a token without exp never expires
        self._expiries.set(socket, claims.exp + self.verifier.leeway - time.time())

    def _expire(self, socket: Socket) -> None:
        if socket.connected:
            claims = claims_of(socket)
            sub = claims.sub if claims is not None else None
            logger.info("token of %r expired: disconnecting socket %s", sub, socket.id)
            socket.nsp.server.tasks.spawn(socket.disconnect())


def jwt_auth(
    *,
    secret: str | bytes | None = None,
    public_key: str | bytes | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    leeway: float = DEFAULT_LEEWAY,
) -> JwtAuth:
    """The token middleware: ``io.use(jwt_auth(secret=...))``.

    Args:
        secret: The HS256 shared secret (at least 32 bytes).
        public_key: Or a PEM public key: RSA (RS256) or P-256 EC (ES256); needs the
            ``auth`` extra.
        issuer: When set, the ``iss`` every token must carry.
        audience: When set, what every token's ``aud`` must name.
        leeway: Seconds of clock skew allowed on ``exp``/``nbf`` (default 30).

    Raises:
        ValueError, ImportError: As :class:`~salas.auth.tokens.TokenVerifier`.
    """
    return JwtAuth(
        TokenVerifier(
            secret=secret, public_key=public_key, issuer=issuer, audience=audience, leeway=leeway
        )
    )
