"""Watch streams: the events a ``?watch=true`` client sees, in the order the server made them.

kopf lists, then watches from the list's resourceVersion, and reconnects from the last event's
resourceVersion whenever a stream ends (``timeoutSeconds``); an event it has already seen and
gets again is handled again. So a stream here starts exactly after the requested version (or
with the current objects as ADDED when none is given), ends when asked to, sends BOOKMARKs
only to clients that allow them, and answers a version too old to replay with a 410 ERROR
event, which makes kopf list again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tollgate.testing.resources import ResourceSpec
from tollgate.testing.selection import Matcher
from tollgate.testing.store import ApiError, ObjectStore, WatchEvent, status_body

Event = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class WatchRequest:
    """What one watch asks for: a resource, maybe a namespace, selectors and options."""

    spec: ResourceSpec
    namespace: str | None
    matchers: Sequence[Matcher]
    since: int | None  # None: start with the current objects as ADDED
    timeout: float
    bookmarks: bool = False  # allowWatchBookmarks
    initial_events: bool = False  # sendInitialEvents: end the initial ADDEDs with a BOOKMARK

    def matches(self, body: dict[str, Any] | None) -> bool:
        return body is not None and all(check(body) for check in self.matchers)

    def translate(self, event: WatchEvent) -> Event | None:
        """The event as this watcher sees it, if at all: an object that starts or stops
        matching the selectors arrives as ADDED or DELETED, as from a real server."""
        if event.resource != self.spec.key:
            return None
        if self.namespace is not None and event.namespace != self.namespace:
            return None
        now_matches = self.matches(event.object)
        if event.type != "MODIFIED":
            return {"type": event.type, "object": event.object} if now_matches else None
        was_matching = self.matches(event.old)
        if now_matches:
            return {"type": "MODIFIED" if was_matching else "ADDED", "object": event.object}
        return {"type": "DELETED", "object": event.object} if was_matching else None


def bookmark(spec: ResourceSpec, resource_version: int, *, initial_end: bool = False) -> Event:
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"apiVersion": spec.api_version, "kind": spec.kind, "metadata": metadata},
    }


async def stream_events(
    store: ObjectStore,
    watch: WatchRequest,
    *,
    bookmark_interval: float,
    closed: Callable[[], bool],
) -> AsyncIterator[Event]:
    """Yield watch events until the timeout, until ``closed()``, or until cancelled."""
    cursor = watch.since
    if cursor is None:
        # A consistent snapshot: listed and versioned with no await in between.
        cursor = store.resource_version
        for body in store.list_objects(watch.spec, watch.namespace, watch.matchers):
            yield {"type": "ADDED", "object": body}
        if watch.initial_events and watch.bookmarks:
            yield bookmark(watch.spec, cursor, initial_end=True)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + watch.timeout
    last_sent = loop.time()
    while not closed():
        wakeup = store.wakeup  # taken before reading, so no commit in between is missed
        try:
            events = store.events_since(cursor)
        except ApiError as exc:  # 410 Gone: the client must list again
            yield {"type": "ERROR", "object": status_body(exc.status, exc.reason, exc.message)}
            return
        for event in events:
            cursor = event.resource_version
            delivered = watch.translate(event)
            if delivered is not None:
                last_sent = loop.time()
                yield delivered
        now = loop.time()
        if now >= deadline:
            return
        if watch.bookmarks and now - last_sent >= bookmark_interval:
            last_sent = now
            yield bookmark(watch.spec, cursor)
        if not events:
            delay = deadline - now
            if watch.bookmarks:
                delay = min(delay, bookmark_interval)
            try:
                async with asyncio.timeout(max(delay, 0.0)):
                    await wakeup.wait()
            except TimeoutError:
                pass
