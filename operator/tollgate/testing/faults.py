"""Fault injection and the request log of the test API server.

Tests of a controller must prove how it behaves when a write conflicts (409) or the server
fails (500), and must count writes ("exactly one weight write"). A rule here fails the next
matching requests before they touch storage (or, with ``after_write``, after the write is
stored, as when a response is lost); the log records every request with its final status.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

WRITE_METHODS: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_REASONS: dict[int, str] = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(status: int) -> str:
    return _REASONS.get(status, "InternalError" if status >= 500 else "BadRequest")


@dataclasses.dataclass(frozen=True)
class RequestTarget:
    """What a request addresses, as parsed from its path."""

    method: str
    group: str | None = None
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@dataclasses.dataclass
class FaultRule:
    """Fail the next ``times`` requests matching method and target with ``status``.

    ``resource`` is a plural (``canaries``), ``plural.group`` (``deployments.apps``) or ``*``;
    ``name`` is exact or ``*``; ``subresource`` is exact, ``None`` (the main resource only) or
    ``*`` (the main resource and any subresource). A POST matches by the name in its body.
    """

    method: str
    resource: str
    name: str = "*"
    subresource: str | None = None
    namespace: str | None = None
    status: int = 500
    times: int = 1
    message: str | None = None
    after_write: bool = False
    retry_after: int | None = None
    fired: int = 0

    @classmethod
    def parse(cls, method: str, target: str, **kwargs: Any) -> FaultRule:
        """``target`` is ``resource[/name[/subresource]]``; ``*`` is a wildcard in each part."""
        parts = target.strip("/").split("/")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"fault target must be resource[/name[/subresource]]: {target!r}")
        name = parts[1] if len(parts) > 1 else "*"
        subresource = parts[2] if len(parts) > 2 else ("*" if name == "*" else None)
        return cls(method.upper(), parts[0], name, subresource, **kwargs)

    @property
    def exhausted(self) -> bool:
        return self.fired >= self.times

    def matches(self, target: RequestTarget) -> bool:
        if self.exhausted or target.plural is None:
            return False
        if self.method not in ("*", target.method.upper()):
            return False
        plural, _, group = self.resource.partition(".")
        if plural not in ("*", target.plural) or (group and group != target.group):
            return False
        if self.namespace is not None and self.namespace != target.namespace:
            return False
        if self.name not in ("*", target.name):
            return False
        return self.subresource in ("*", target.subresource)


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One served request: what it asked, how it was sent, and how the server answered."""

    seq: int
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int
    target: RequestTarget
    body: Any = None
    fault: bool = False
    at: float = dataclasses.field(default_factory=time.time)  # wall time it was served

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch", "").lower() in ("true", "1")


class RequestLog:
    """A bounded, thread-safe list of :class:`RequestRecord` (oldest dropped first)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=limit)
        self._lock = threading.Lock()
        self._seq = 0

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        with self._lock:
            return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)


class FaultInjector:
    """The active rules; the first unexhausted matching rule fires."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, target: RequestTarget) -> FaultRule | None:
        """The rule that fails this request (counted as fired), if any."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(target):
                    rule.fired += 1
                    if rule.exhausted:
                        self._rules.remove(rule)
                    return rule
        return None

    @property
    def pending(self) -> list[FaultRule]:
        with self._lock:
            return [rule for rule in self._rules if not rule.exhausted]
