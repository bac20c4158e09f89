"""A reconcile that fails surfaces, counts toward a bound and ends in a safe state.

Before, the daemon loop logged a failed reconcile and tried again in 10 s: a rollout whose
reconcile raised on every tick froze where it was, traffic on the new version, with no status,
no Event and no deadline. Now every failure posts a Warning Event and sets the rollout's
``Ready`` condition to ``ReconcileFailed``; once more than ``analysis.consecutiveErrorLimit``
reconciles in a row have failed over at least one analysis interval, the new version's traffic
is put back on the stable one (as on deletion) and status says ``RolledBack/ReconcileFailed``.
A later reconcile that works resumes from that status.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tollgate.adapters.kube.client import KubeError
from tollgate.adapters.kube.resources import Resource
from tollgate.adapters.kube.status import read_status, write_status
from tollgate.adapters.routers.base import RouterError
from tollgate.api.analysis import AnalysisSpec
from tollgate.api.durations import seconds
from tollgate.api.status import Phase
from tollgate.engine.conditions import with_reconcile_failure
from tollgate.runtime.wiring import Wiring

log = logging.getLogger("tollgate")
IN_FLIGHT = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK})
TEXT_LIMIT = 512
Restore = Callable[[Wiring], Awaitable[object]]


@dataclass
class Streak:
    """Reconciles of one object that failed in a row (process memory: a restart starts over,
    which only delays the bound by one streak)."""

    count: int = 0
    since: datetime | None = None
    restored: bool = False

    def reset(self) -> None:
        self.count, self.since, self.restored = 0, None, False


def _limits(body: dict[str, Any]) -> tuple[int, float]:
    """Failures in a row tolerated, and over how long: the spec's, or the defaults."""
    try:
        analysis = AnalysisSpec.model_validate((body.get("spec") or {}).get("analysis") or {})
    except ValidationError:
        analysis = AnalysisSpec()
    return analysis.consecutive_error_limit, seconds(analysis.interval)


def _text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


async def report_failure(
    resource: Resource,
    body: dict[str, Any],
    wiring: Wiring,
    exc: BaseException,
    streak: Streak,
    restore: Restore | None,
) -> None:
    """Surface one failed reconcile; past the bound, put the traffic back (once per streak)."""
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    now = wiring.now()
    streak.count += 1
    streak.since = streak.since or now
    if streak.count == 1:
        log.exception("reconcile of %s %s/%s failed", resource.kind, namespace, name)
    else:
        log.warning(
            "reconcile of %s %s/%s failed %d times in a row: %s",
            resource.kind, namespace, name, streak.count, _text(exc),
        )  # fmt: skip
    status, _dropped = read_status(body.get("status"))
    limit, interval = _limits(body)
    lasted = (now - streak.since).total_seconds()
    message = f"reconcile failed {streak.count} time(s) in a row over {lasted:.0f}s: {_text(exc)}"
    bound_passed = streak.count > limit and lasted >= interval
    if status.phase in IN_FLIGHT and bound_passed and not streak.restored and restore:
        streak.restored = True
        try:
            await restore(wiring)
        except (RouterError, KubeError, TimeoutError) as error:
            message += f"; traffic NOT put back on the stable version: {_text(error)}"
            streak.restored = False
        else:
            message += "; traffic put back on the stable version"
            status = status.model_copy(
                update={
                    "phase": Phase.ROLLED_BACK,
                    "reason": "ReconcileFailed",
                    "message": message,
                    "canary_weight": 0,
                    "pending_gates": [],
                    "paused_by_user": False,
                }
            )
    await wiring.events.post(
        wiring.kube, body, "ReconcileFailed", message, warning=True, now=now, repeat=True
    )
    failed = with_reconcile_failure(status, message, meta.get("generation"), now)
    try:
        await write_status(
            wiring.kube, resource, namespace, name, body.get("status"), failed,
            meta.get("resourceVersion"),
        )  # fmt: skip
    except KubeError as error:  # the Event and the log still say it
        log.warning("%s/%s: failure not recorded in status: %s", namespace, name, _text(error))
