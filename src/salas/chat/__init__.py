"""salas.chat: the chat application — rooms, history, presence, typing — and its web pages.

>>> from salas.chat import ChatConfig, create_app
>>> from salas.store import open_store
>>> store = open_store("salas.db"); await store.open()
>>> app = create_app(ChatConfig(single_room=False), store)
>>> port = await app.start("127.0.0.1", 8000)

`app.messages.post(room, text, user=...)` posts a message without a socket;
`create_app(..., api=ApiConfig(token=...))` opens the HTTP publish API (salas.chat.api).
The wire protocol is docs/chat-protocol.md; `salas serve` (salas.cli) runs this app.
"""

from salas.chat.api import ApiConfig, HttpApi
from salas.chat.app import ChatApp, create_app
from salas.chat.config import ChatConfig
from salas.chat.errors import ChatError
from salas.chat.messages import MessageService
from salas.chat.presence import LocalPresence, PresenceBackend

__all__ = [
    "ApiConfig",
    "ChatApp",
    "ChatConfig",
    "ChatError",
    "HttpApi",
    "LocalPresence",
    "MessageService",
    "PresenceBackend",
    "create_app",
]
