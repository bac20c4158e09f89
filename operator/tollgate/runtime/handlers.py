"""kopf wiring: one daemon per Canary runs the reconcile loop; deletion returns traffic.

Run with ``kopf run -m tollgate.runtime.handlers --all-namespaces`` (or ``--namespace``), with
``--standalone`` for a single replica or ``--peering`` for HA. The daemon sleeps until the next
tick the engine asked for, or until the spec or a request annotation changes.
"""

import asyncio
import logging
from typing import Any

import kopf

from tollgate.adapters.kube.client import KubeClient, KubeError, NotFoundError
from tollgate.adapters.kube.events import post_event
from tollgate.adapters.kube.resources import CANARIES
from tollgate.adapters.routers.base import RouterError
from tollgate.api import GROUP, VERSION
from tollgate.api.canary import CanarySpec
from tollgate.api.intents import REQUEST_ANNOTATION
from tollgate.api.validation import parse
from tollgate.runtime.canary import reconcile_canary, router_for
from tollgate.runtime.settings import Settings
from tollgate.runtime.wiring import Wiring

log = logging.getLogger("tollgate")
MEMO_WIRING = "tollgate_wiring"
MEMO_WAKE = "tollgate_wake"
MEMO_SEEN = "tollgate_seen"
MEMO_TARGETS = "tollgate_targets"


def _wiring(memo: kopf.Memo) -> Wiring:
    wiring: Wiring = memo[MEMO_WIRING]
    return wiring


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Build the clients once; keep kopf's own bookkeeping in annotations (not in status)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="tollgate.dev")
    settings.persistence.finalizer = "tollgate.dev/finalizer"
    settings.posting.enabled = False  # Tollgate posts its own Events
    settings.watching.server_timeout = 300
    memo[MEMO_WIRING] = Wiring.create(Settings.from_env(), KubeClient.from_kubeconfig())
    memo[MEMO_WAKE] = {}
    memo[MEMO_SEEN] = {}
    memo[MEMO_TARGETS] = {}


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if MEMO_WIRING in memo:
        await _wiring(memo).aclose()


@kopf.on.event(GROUP, VERSION, "canaries")
async def wake_on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wake the object's daemon when its spec or its request annotation changed."""
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


@kopf.daemon(GROUP, VERSION, "canaries", cancellation_timeout=10.0)
async def canary_loop(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    """The reconcile loop of one Canary, for as long as it exists."""
    wiring = _wiring(memo)
    wake: dict[str, asyncio.Event] = memo[MEMO_WAKE]
    uid = body.metadata.uid or ""
    event = wake.setdefault(uid, asyncio.Event())
    targets: dict[tuple[str | None, str], str] = memo[MEMO_TARGETS]
    while not stopped:
        event.clear()
        target = (body.spec.get("targetRef") or {}).get("name")
        if target:
            targets[(body.metadata.namespace, target)] = uid
        try:
            # kopf's body can lag our own last status write; decide only on a fresh read.
            fresh = await wiring.kube.get(
                CANARIES, body.metadata.namespace, body.metadata.name or ""
            )
            outcome = await reconcile_canary(fresh, wiring)
            delay = outcome.requeue_after
        except NotFoundError:  # being deleted: kopf stops this daemon
            delay = 1.0
        except Exception:
            log.exception("reconcile of %s/%s failed", body.metadata.namespace, body.metadata.name)
            delay = 10.0
        waiter = asyncio.ensure_future(event.wait())
        stopper = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait(
                {waiter, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            stopper.cancel()
    wake.pop(uid, None)
    for key in [k for k, v in targets.items() if v == uid]:
        targets.pop(key, None)


@kopf.on.delete(GROUP, VERSION, "canaries")
async def canary_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Put all traffic back on primary before the Canary goes; never hang on a missing route."""
    wiring = _wiring(memo)
    spec, _problems = parse(CanarySpec, dict(body.spec))
    if spec is None:
        return
    namespace = body.metadata.namespace or ""
    try:
        router = router_for(spec, namespace, wiring)
        await asyncio.wait_for(router.set_weight(0), timeout=wiring.settings.delete_timeout)
    except (RouterError, KubeError, TimeoutError) as exc:
        await post_event(
            wiring.kube,
            dict(body),
            "TrafficNotRestored",
            f"could not return traffic to primary on deletion: {exc}",
            warning=True,
            now=wiring.now(),
        )
