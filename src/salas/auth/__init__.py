"""Identity: token verification (JWT), claims on the socket, room access rules.

- :func:`jwt_auth` / :class:`JwtAuth`: the Server middleware (``io.use(jwt_auth(secret=
  ...))``) that refuses sockets without a valid token and puts the claims in
  ``socket.data["user"]``; :func:`claims_of` reads them back as :class:`Claims`.
- :class:`TokenVerifier` checks a token (HS256 with a secret, RS256/ES256 with a PEM public
  key); :func:`mint_token` makes an HS256 one.
- :class:`RoomRules`: which rooms are private and who may enter them.

Uses the public API of :mod:`salas.server`; knows nothing of the chat.
"""

from salas.auth.claims import ROLES, Claims
from salas.auth.errors import AuthError
from salas.auth.middleware import (
    UNAUTHORIZED,
    JwtAuth,
    claims_of,
    jwt_auth,
    token_from_handshake,
    unauthorized,
)
from salas.auth.rooms import RoomRules, matches_any
from salas.auth.tokens import TokenVerifier, mint_token

__all__ = [
    "ROLES",
    "UNAUTHORIZED",
    "AuthError",
    "Claims",
    "JwtAuth",
    "RoomRules",
    "TokenVerifier",
    "claims_of",
    "jwt_auth",
    "matches_any",
    "mint_token",
    "token_from_handshake",
    "unauthorized",
]
