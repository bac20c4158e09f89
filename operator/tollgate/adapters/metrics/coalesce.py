"""Concurrent calls within a short window answered by one batch: the front of both readers.

kopf reconciles each object in its own task. A reader's callers ``submit`` their item; calls
for the same evaluation time that arrive within ``window`` seconds of the first one form one
batch, handed once to ``answer``, whose results (one per item, in order) go back to each
caller. An exception from ``answer`` reaches every caller of that batch.

Evaluation times are floored to ``GRID`` seconds first: every reconcile passes its own clock,
and keyed by the microsecond no two calls ever shared a batch (ten concurrent reads sent 30
queries instead of 3). A second is nothing next to a 15 s scrape. Each caller waits at most
its own ``timeout``: a member that asked for a short one gives up alone, the batch goes on.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

GRID = 1.0  # seconds: evaluation times are floored to it
# seconds a batch waits for more members (0.25 s measured no better with 200 Canaries)
BATCH_WINDOW = 0.05
GRACE = 0.5  # seconds a caller waits past its timeout for a batch that asked with it

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Batches concurrent submissions per evaluation time."""

    def __init__(
        self,
        answer: Callable[[list[Item], datetime | None], Awaitable[list[Result]]],
        window: float,
    ) -> None:
        self._answer = answer
        self._window = window
        self._pending: dict[datetime | None, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._flushes: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item, at: datetime | None, timeout: float | None = None) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        at = aligned(at)
        waiting = self._pending.setdefault(at, [])
        waiting.append((item, future))
        if len(waiting) == 1:
            flush = asyncio.create_task(self._run(at))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        if timeout is None:
            return await future
        try:
            # its own timeout, plus the batching window and a grace for the answer's parsing
            limit = timeout + self._window + GRACE
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError as exc:
            raise TimeoutError(f"no complete answer within {timeout:g}s") from exc

    async def _run(self, at: datetime | None) -> None:
        await asyncio.sleep(self._window)
        batch = self._pending.pop(at, [])
        try:
            results = await self._answer([item for item, _ in batch], at)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def aligned(at: datetime | None) -> datetime | None:
    """``at`` floored to the grid (None stays None: "now", for the server to choose)."""
    if at is None:
        return None
    stamp = at.timestamp()
    return datetime.fromtimestamp(stamp - stamp % GRID, tz=at.tzinfo)
