"""What was seen lately and need not be read again yet: claims that are ours, Services that exist.

Reading them on every tick of every rollout was a sixth of the operator's CPU at 200 Canaries
(docs/decisions.md 44); what they guard changes rarely, and a stale entry costs at most its
time to live.
"""

import time
from collections.abc import Callable, Hashable


class Recent:
    """Keys seen recently (for ``ttl`` seconds): what need not be read again yet."""

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._until: dict[Hashable, float] = {}

    def fresh(self, key: Hashable) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until < self.clock():
            del self._until[key]
            return False
        return True

    def remember(self, key: Hashable) -> None:
        self._until[key] = self.clock() + self.ttl

    def forget(self, match: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._until if match(k)]:
            del self._until[key]
