"""kopf wiring: one daemon per Canary and per PromptRelease runs its reconcile loop.

Deletion puts all traffic back on the stable version.
Run with ``kopf run -m tollgate.runtime.handlers --all-namespaces`` (or ``--namespace``), with
``--standalone`` for a single replica or ``--peering`` for HA. The daemon sleeps until the next
tick the engine asked for, or until the spec or a request annotation changes.
"""

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import kopf

from tollgate.adapters.kube.client import KubeClient, KubeError, NotFoundError
from tollgate.adapters.kube.credentials import Credentials
from tollgate.adapters.kube.resources import CANARIES, PROMPTRELEASES, Resource
from tollgate.adapters.kube.status import read_status
from tollgate.adapters.routers.base import RouterError
from tollgate.api import GROUP, VERSION
from tollgate.api.intents import REQUEST_ANNOTATION
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.validation import parse
from tollgate.runtime.canary import reconcile_canary
from tollgate.runtime.deletion import Holdings, hand_over, release_targets
from tollgate.runtime.failures import Restore, Streak, report_failure
from tollgate.runtime.peering import ensure_peering, lifetime_from
from tollgate.runtime.promptrelease import publisher_for, reconcile_prompt_release
from tollgate.runtime.recording import CONFLICT_RETRY, Outcome
from tollgate.runtime.settings import Settings
from tollgate.runtime.telemetry import Telemetry
from tollgate.runtime.wiring import Wiring

log = logging.getLogger("tollgate")
MEMO_WIRING = "tollgate_wiring"
MEMO_WAKE = "tollgate_wake"
MEMO_SEEN = "tollgate_seen"
MEMO_TARGETS = "tollgate_targets"
MEMO_PROMPTS = "tollgate_prompts"
MEMO_TELEMETRY = "tollgate_telemetry"
MEMO_ROUTES = "tollgate_routes"
FAILED_RETRY = 10.0  # seconds before a failed reconcile is tried again
CONFLICT_BACKOFF_CAP = 5.0  # seconds: the longest wait after lost write races


def _wiring(memo: kopf.Memo) -> Wiring:
    wiring: Wiring = memo[MEMO_WIRING]
    return wiring


# kopf and Tollgate's own client log in through this one object (adapters/kube/credentials.py).
CREDENTIALS = Credentials()


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials: the same login Tollgate's client uses, made anew when kopf asks
    (at start, at the login's expiration, after a 401)."""
    return (await CREDENTIALS.refresh()).info


WATCH_HANDLERS = ("wake_on_change", "wake_prompt_on_change", "wake_on_workload",
                  "wake_on_route", "wake_dependent_prompts")  # fmt: skip


class _QuietWatchHandlers(logging.Filter):
    """kopf logs "<handler> succeeded." at INFO for every event an event handler sees: for
    the Deployment watch that is every Deployment change in the cluster. Those go to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        watch = any(f"'{name}'" in message for name in WATCH_HANDLERS)
        if record.levelno == logging.INFO and message.endswith("succeeded.") and watch:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_logs() -> None:
    """Logs are for operators: decisions and state changes at INFO, not every request."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet = _QuietWatchHandlers()
    for name in ("kopf.objects", "kopf"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietWatchHandlers) for f in logger.filters):
            logger.addFilter(quiet)


class NoDiffBase(kopf.DiffBaseStorage):
    """Keep no copy of the last handled spec (kopf's ``last-handled-configuration``).

    kopf stores one to tell an update from a create for its change handlers. Tollgate has none:
    daemons read the live object, event handlers compare generations, and the only change
    handler is on.delete, which a deletionTimestamp tells apart. A full copy of every spec in
    an annotation is only weight on every object (and a second place GitOps tools diff).
    """

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Build the clients once; keep kopf's own bookkeeping in annotations (not in status)."""
    quiet_logs()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="tollgate.dev")
    settings.persistence.finalizer = "tollgate.dev/finalizer"
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.enabled = False  # Tollgate posts its own Events
    tollgate = Settings.from_env()
    # a watch never outlives its timeout, so a half-open connection cannot blind the operator
    settings.watching.server_timeout = tollgate.watch_timeout
    settings.watching.client_timeout = tollgate.watch_timeout * 1.5
    settings.watching.connect_timeout = 10.0
    kube = await KubeClient.from_credentials(CREDENTIALS)
    memo[MEMO_WIRING] = Wiring.create(tollgate, kube)
    memo[MEMO_TELEMETRY] = Telemetry()
    if tollgate.metrics_address:
        await memo[MEMO_TELEMETRY].serve(tollgate.metrics_address)
    if settings.peering.mandatory:  # --peering NAME: one of several replicas
        await join_peering(settings, kube, memo[MEMO_WIRING].settings.namespaces)
    memo[MEMO_WAKE] = {}
    memo[MEMO_SEEN] = {}
    memo[MEMO_TARGETS] = {}
    memo[MEMO_PROMPTS] = {}
    memo[MEMO_ROUTES] = {}


async def join_peering(
    settings: kopf.OperatorSettings, kube: KubeClient, namespaces: tuple[str, ...]
) -> None:
    """Peering as runtime/peering.py says: a bounded failover, quiet keep-alives, and the
    peering object there before kopf waits for it."""
    settings.peering.lifetime = lifetime_from(os.environ.get("TOLLGATE_PEERING_LIFETIME"))
    settings.peering.stealth = True
    name, clusterwide = settings.peering.name, settings.peering.clusterwide
    for problem in await ensure_peering(kube, name, clusterwide, namespaces):
        log.warning("peering object missing, this replica waits until it exists: %s", problem)
    log.info("peering %r (priority %d, failover after %d s)", name,
             settings.peering.priority, settings.peering.lifetime)  # fmt: skip


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if MEMO_WIRING in memo:
        await _wiring(memo).aclose()
    if MEMO_TELEMETRY in memo:
        await memo[MEMO_TELEMETRY].aclose()


@kopf.on.event(GROUP, VERSION, "canaries")
async def wake_on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wake the Canary's daemon when its spec or its request annotation changed."""
    _wake_if_changed(body, memo)


@kopf.on.event(GROUP, VERSION, "promptreleases")
async def wake_prompt_on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wake the PromptRelease's daemon when its spec or its request annotation changed."""
    _wake_if_changed(body, memo)


def _wake_if_changed(body: kopf.Body, memo: kopf.Memo) -> None:
    uid = body.metadata.uid
    key = (body.metadata.get("generation"), body.metadata.annotations.get(REQUEST_ANNOTATION))
    seen: dict[str, Any] = memo.get(MEMO_SEEN, {})
    if seen.get(uid) != key:
        seen[uid] = key
        wake: dict[str, asyncio.Event] = memo.get(MEMO_WAKE, {})
        if uid in wake:
            wake[uid].set()


@kopf.on.event("apps", "v1", "deployments")
async def wake_on_workload(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wake the Canary whose target (or primary) Deployment changed or became ready."""
    name = body.metadata.name or ""
    key = (body.metadata.namespace, name.removesuffix("-primary"))
    uid = memo.get(MEMO_TARGETS, {}).get(key)
    if uid is None:
        return
    state = (
        "deployment",
        name,
        body.metadata.get("generation"),
        body.status.get("observedGeneration"),
        body.status.get("availableReplicas"),
    )
    seen: dict[Any, Any] = memo.get(MEMO_SEEN, {})
    if seen.get((uid, name)) != state:
        seen[(uid, name)] = state
        wake: dict[str, asyncio.Event] = memo.get(MEMO_WAKE, {})
        if uid in wake:
            wake[uid].set()


@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes")
async def wake_on_route(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wake the Canary whose HTTPRoute changed: a GitOps re-apply that drops the canary's
    backendRef (or its weight) is put right at once, not at the next tick."""
    uid = memo.get(MEMO_ROUTES, {}).get((body.metadata.namespace, body.metadata.name or ""))
    if uid is None:
        return
    seen: dict[Any, Any] = memo.get(MEMO_SEEN, {})
    state = ("route", body.metadata.get("generation"), body.metadata.get("resourceVersion"))
    if seen.get((uid, "route")) != state:
        seen[(uid, "route")] = state
        wake: dict[str, asyncio.Event] = memo.get(MEMO_WAKE, {})
        if uid in wake:
            wake[uid].set()


async def _loop(
    resource: Resource,
    reconcile: Callable[[dict[str, Any], Wiring], Awaitable[Outcome]],
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    on_tick: Callable[[dict[str, Any]], None],
    restore_for: Callable[[dict[str, Any]], Restore | None],
    count_keys: Callable[[dict[str, Any]], list[str]],
) -> None:
    """Reconcile one object until it goes: on the engine's schedule, or at once when woken.

    A failed reconcile is reported and bounded (runtime/failures.py), then tried again.
    """
    wiring = _wiring(memo)
    telemetry: Telemetry = memo.get(MEMO_TELEMETRY) or Telemetry()
    wake: dict[str, asyncio.Event] = memo[MEMO_WAKE]
    uid = body.metadata.uid or ""
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    event = wake.setdefault(uid, asyncio.Event())
    streak = Streak()
    conflicts = 0
    observed = False  # this object's series set at least once
    fresh: dict[str, Any] = dict(body)
    try:
        while not stopped:
            event.clear()
            try:
                # kopf's body can lag our own last status write; decide only on a fresh read.
                fresh = await wiring.kube.get(resource, namespace, name)
                on_tick(fresh)
                began = time.monotonic()
                outcome = await reconcile(fresh, wiring)
                took = time.monotonic() - began
                record(telemetry, resource.kind, fresh, outcome, took, first=not observed)
                observed = True
                delay = outcome.requeue_after
                streak.reset()
                conflicts = conflicts + 1 if delay == CONFLICT_RETRY else 0
                if conflicts:  # lost a race again: back off, with jitter, up to a bound
                    delay = conflict_backoff(conflicts)
            except NotFoundError:  # being deleted: kopf stops this daemon
                delay = 1.0
            except Exception as exc:
                delay = FAILED_RETRY
                telemetry.failures.labels(resource.kind).inc()
                try:
                    await report_failure(resource, fresh, wiring, exc, streak, restore_for(fresh))
                except Exception:  # reporting must never end the loop
                    log.exception("reporting a failed reconcile of %s/%s failed", namespace, name)
            delay = on_the_second(delay)
            waiter = asyncio.ensure_future(event.wait())
            stopper = asyncio.ensure_future(stopped.wait())
            try:
                await asyncio.wait(
                    {waiter, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
                stopper.cancel()
    finally:  # the object is gone (or the operator stops): forget everything about it
        wake.pop(uid, None)
        telemetry.forget(resource.kind, namespace, name)
        for table in (memo[MEMO_TARGETS], memo[MEMO_PROMPTS], memo.get(MEMO_ROUTES, {})):
            for key in [k for k, v in table.items() if v == uid]:
                table.pop(key, None)
        seen: dict[Any, Any] = memo.get(MEMO_SEEN, {})
        for key in [k for k in seen if k == uid or (isinstance(k, tuple) and uid in k)]:
            seen.pop(key, None)
        for key in count_keys(fresh):
            wiring.counts.forget(key)
        wiring.recent.forget(lambda key: isinstance(key, tuple) and uid in key)


def record(
    telemetry: Telemetry,
    kind: str,
    fresh: dict[str, Any],
    outcome: Outcome,
    took: float,
    first: bool = False,
) -> None:
    """The metrics (and the log line) of one reconcile: the status it recorded; on the first
    tick of an object the one it read. A tick that wrote nothing changes no series, so its
    status is not parsed a second time."""
    telemetry.reconciles.labels(kind).observe(took)
    decision = outcome.decision
    written = decision is not None and outcome.status_written
    if not (written or first):
        return
    meta = fresh.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    before, _dropped = read_status(fresh.get("status"))
    status = decision.status if decision is not None and written else before
    telemetry.observe(kind, namespace, name, status)
    if decision is None or not written:
        return
    telemetry.ended(kind, status, before, datetime.now(UTC))
    if (status.phase, status.current_step, status.reason) != (
        before.phase,
        before.current_step,
        before.reason,
    ):  # a decision, not a status refresh (counts, evidence) at the same step
        telemetry.decisions.labels(kind, decision.reason).inc()
        log.info("%s %s/%s: %s at %d%% (step %d/%d), %s: %s", kind, namespace, name,
                 status.phase or "Pending", status.canary_weight, status.current_step,
                 status.total_steps, status.reason, status.message)  # fmt: skip


@kopf.daemon(GROUP, VERSION, "canaries", cancellation_timeout=10.0)
async def canary_loop(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    """The reconcile loop of one Canary, for as long as it exists."""
    targets: dict[tuple[str | None, str], str] = memo[MEMO_TARGETS]
    uid = body.metadata.uid or ""

    routes: dict[tuple[str | None, str], str] = memo[MEMO_ROUTES]

    def remember(fresh: dict[str, Any]) -> None:
        spec = fresh.get("spec") or {}
        target = (spec.get("targetRef") or {}).get("name")
        if target:
            targets[(body.metadata.namespace, target)] = uid
        route = (spec.get("router") or {}).get("httpRoute") or {}
        if isinstance(route.get("name"), str):
            routes[(route.get("namespace") or body.metadata.namespace, route["name"])] = uid

    def count_keys(fresh: dict[str, Any]) -> list[str]:
        target = (fresh.get("spec", {}).get("targetRef") or {}).get("name")
        return [f"{body.metadata.namespace}/{target}"] if target else []

    await _loop(
        CANARIES, reconcile_canary, body, stopped, memo, remember, canary_restore, count_keys
    )


@kopf.daemon(GROUP, VERSION, "promptreleases", cancellation_timeout=10.0)
async def prompt_release_loop(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    """The reconcile loop of one PromptRelease, for as long as it exists."""
    prompts: dict[tuple[str | None, str], str] = memo[MEMO_PROMPTS]
    prompts[(body.metadata.namespace, body.metadata.name or "")] = body.metadata.uid or ""
    await _loop(
        PROMPTRELEASES,
        reconcile_prompt_release,
        body,
        stopped,
        memo,
        lambda _: None,
        prompt_restore,
        lambda _: [f"{body.metadata.namespace}/{body.metadata.name}"],
    )


@kopf.on.event(GROUP, VERSION, "canaries")
async def wake_dependent_prompts(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Canary's release moved: wake the PromptReleases of its namespace that may need it."""
    status = body.get("status") or {}
    state = (status.get("phase"), status.get("revision"), status.get("stableRevision"))
    seen: dict[Any, Any] = memo.get(MEMO_SEEN, {})
    key = ("code", body.metadata.uid)
    if seen.get(key) == state:
        return
    seen[key] = state
    wake: dict[str, asyncio.Event] = memo.get(MEMO_WAKE, {})
    for (namespace, _name), uid in list(memo.get(MEMO_PROMPTS, {}).items()):
        if namespace == body.metadata.namespace and uid in wake:
            wake[uid].set()


async def _restore_on_delete(
    body: kopf.Body, memo: kopf.Memo, restore: Callable[[Wiring], Awaitable[object]], what: str
) -> bool:
    """Run ``restore`` within the delete timeout; on failure post an Event instead of hanging
    (False)."""
    wiring = _wiring(memo)
    try:
        await asyncio.wait_for(restore(wiring), timeout=wiring.settings.delete_timeout)
    except (RouterError, KubeError, TimeoutError) as exc:
        await _warn(
            wiring, body, "TrafficNotRestored", f"could not put all traffic on {what}: {exc}"
        )
        return False
    return True


async def _warn(wiring: Wiring, body: kopf.Body, reason: str, message: str) -> None:
    """A Warning Event about a Canary being deleted."""
    await wiring.events.post(
        wiring.kube, dict(body), reason, f"on deletion: {message}", warning=True, now=wiring.now()
    )


def conflict_backoff(conflicts: int) -> float:
    """Seconds before the next try after ``conflicts`` lost write races in a row."""
    base: float = min(CONFLICT_BACKOFF_CAP, CONFLICT_RETRY * 2.0 ** (conflicts - 1))
    return base * random.uniform(0.5, 1.5)


def on_the_second(delay: float) -> float:
    """A delay that ends on a whole second of the wall clock: rollouts due in the same second
    then read Prometheus together, in one batch (adapters/metrics/coalesce.py)."""
    if delay < 1.0:
        return delay
    due = time.time() + delay
    return delay + (math.ceil(due) - due)


def canary_restore(body: dict[str, Any]) -> Restore | None:
    """All of a Canary's traffic back on primary; None when its spec names no target."""
    holdings = Holdings.of(body)
    return holdings.restore if holdings is not None else None


def prompt_restore(body: dict[str, Any]) -> Restore | None:
    """A PromptRelease's candidate out of the published document (the stable one stays)."""
    spec, _problems = parse(PromptReleaseSpec, body.get("spec"))
    if spec is None:
        return None
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""

    async def restore(wiring: Wiring) -> None:
        await (await publisher_for(spec, namespace, name, wiring)).set_weight(0)

    return restore


@kopf.on.delete(GROUP, VERSION, "canaries")
async def canary_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Put all traffic back on primary before the Canary goes; never hang on a missing route.
    Then, as ``revertOnDeletion`` says, leave primary serving without owner references, or
    hand the traffic back to the target's own pods; release the claims on target and route."""
    wiring = _wiring(memo)
    holdings = Holdings.of(dict(body))
    if holdings is None:
        await _warn(wiring, body, "NotReleased", "its spec names no target: nothing released")
        return
    restored = await _restore_on_delete(body, memo, holdings.restore, "primary")
    try:
        await asyncio.wait_for(
            hand_over(holdings, wiring, restored), timeout=wiring.settings.delete_timeout
        )
    except (KubeError, TimeoutError) as exc:
        what = f"{holdings.target}-primary and its Services"
        await _warn(wiring, body, "ReleaseFailed", f"could not release {what}: {exc}")
        raise kopf.TemporaryError(f"release failed: {exc}", delay=5.0) from exc
    try:
        await release_targets(holdings, wiring)
    except KubeError as exc:  # a stale claim is taken over by the next Canary anyway
        log.warning("claims of Canary %s not released: %s", body.metadata.name, exc)


@kopf.on.delete(GROUP, VERSION, "promptreleases")
async def prompt_release_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Drop the candidate from the published document; the stable version stays for apps."""
    restore = prompt_restore(dict(body))
    if restore is not None:
        await _restore_on_delete(body, memo, restore, "the stable prompt")
