"""The TrafficRouter protocol every router implements."""

from typing import Protocol


class RouterError(Exception):
    """The router object is missing, malformed, or a write could not be verified."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TrafficRouter(Protocol):
    """Reads and writes the canary's share of traffic, in percent."""

    async def get_weight(self) -> int | None:
        """The canary weight now in effect; None when the owned entries disagree."""
        ...

    async def set_weight(self, weight: int) -> int:
        """Write ``weight`` and return the weight read back after the write."""
        ...
