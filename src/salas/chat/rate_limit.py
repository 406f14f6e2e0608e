"""The chat's one event budget per connection: what each event costs, and the cut-off.

Every chat event a socket sends spends from one token bucket (`ChatConfig.message_burst`
tokens, refilled at `message_rate` per second): `message`, `channel_join`, `channel_leave`,
`history`, `nick` and the moderation events (`delete_message`, `kick`, `ban`, `unban`)
cost one token each, `typing` a fifth of one (clients send it while the
user types, and it is cheap to handle). An event over budget is refused (`rate_limited`);
after `ChatConfig.event_cutoff` refusals in a row the connection is closed, since a client
that goes on sending into a closed door is a flood, not a person.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from salas.engine import TokenBucket

__all__ = ["EVENT_COSTS", "BudgetCounts", "EventBudget"]

# Tokens each chat event spends (an event not listed costs one).
EVENT_COSTS: dict[str, float] = {
    "message": 1.0,
    "channel_join": 1.0,
    "channel_leave": 1.0,
    "history": 1.0,
    "nick": 1.0,
    "typing": 0.2,
    "delete_message": 1.0,
    "kick": 1.0,
    "ban": 1.0,
    "unban": 1.0,
}


@dataclass(slots=True)
class BudgetCounts:
    """What the event budgets of one chat refused, summed over its sockets (for metrics)."""

    refused: int = 0  # events refused (rate_limited)
    cut_off: int = 0  # sockets disconnected for `event_cutoff` refusals in a row


class EventBudget:
    """One socket's budget of chat events, and how many it has had refused in a row.

    Attributes:
        refused_in_a_row: Events refused since the last one admitted.
        counts: Where refusals are summed, when set (the chat sets it with metrics on).
    """

    __slots__ = ("_bucket", "_cutoff", "counts", "refused_in_a_row")

    def __init__(
        self,
        burst: int,
        rate: float,
        cutoff: int,
        clock: Callable[[], float] = time.monotonic,
        counts: BudgetCounts | None = None,
    ) -> None:
        self._bucket = TokenBucket(burst, rate, clock)
        self._cutoff = cutoff
        self.refused_in_a_row = 0
        self.counts = counts

    def spend(self, event: str) -> bool:
        """Spend what `event` costs; False: refuse it."""
        if self._bucket.take(EVENT_COSTS.get(event, 1.0)):
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        counts = self.counts
        if counts is not None:
            counts.refused += 1
            if self.refused_in_a_row == self._cutoff:
                counts.cut_off += 1
        return False

    @property
    def cut_off(self) -> bool:
        """True once `cutoff` events in a row were refused (never with a cutoff of 0)."""
        return 0 < self._cutoff <= self.refused_in_a_row
