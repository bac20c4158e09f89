"""Kubernetes Events about a rollout (kubectl describe shows them; alerting can follow them).

A rollout analysed every few seconds would leave hundreds of identical-looking Events. As
client-go's EventCorrelator does, :class:`EventSeries` turns a repeat of the same reason about
the same object into an update of the previous Event (count, lastTimestamp, the latest message).
"""

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollgate.adapters.kube.client import KubeClient, KubeError
from tollgate.adapters.kube.resources import EVENTS


def _event(
    involved: dict[str, Any], reason: str, message: str, *, warning: bool, now: datetime
) -> dict[str, Any]:
    meta = involved.get("metadata", {})
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{meta.get('name', 'tollgate')}.",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "tollgate"},
        "reportingComponent": "tollgate.dev/operator",
        "reportingInstance": "tollgate",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def _create(kube: KubeClient, namespace: str | None, body: dict[str, Any]) -> str | None:
    try:
        created = await kube.create(EVENTS, namespace, body)
    except KubeError:
        return None
    name = created.get("metadata", {}).get("name")
    return name if isinstance(name, str) else ""


@dataclass
class _Latest:
    reason: str
    namespace: str | None
    name: str
    count: int
    repeatable: bool


class EventSeries:
    """Posts Events; a repeat of an object's latest reason updates that Event instead.

    Only Events posted with ``repeat`` fold into each other: a one-off Event (a step, a
    rollback) is never overwritten by an analysis that shares its reason.

    Failing to post an Event never fails a reconcile: ``post`` says False instead.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._latest: OrderedDict[str, _Latest] = OrderedDict()
        self._limit = limit

    async def post(
        self,
        kube: KubeClient,
        involved: dict[str, Any],
        reason: str,
        message: str,
        *,
        warning: bool,
        now: datetime,
        repeat: bool = False,
    ) -> bool:
        """Post an Event; with ``repeat``, fold it into the object's latest one of that reason."""
        meta = involved.get("metadata", {})
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        latest = self._latest.get(uid)
        if repeat and latest and latest.repeatable and latest.reason == reason and latest.name:
            stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            patch = {"count": latest.count + 1, "lastTimestamp": stamp, "message": message[:1024]}
            try:
                await kube.patch(EVENTS, latest.namespace, latest.name, patch)
            except KubeError:
                pass  # expired or refused: post a new one
            else:
                latest.count += 1
                self._latest.move_to_end(uid)
                return True
        body = _event(involved, reason, message, warning=warning, now=now)
        name = await _create(kube, meta.get("namespace"), body)
        if name is None:
            return False
        self._latest[uid] = _Latest(reason, meta.get("namespace"), name, 1, repeat)
        self._latest.move_to_end(uid)
        while len(self._latest) > self._limit:
            self._latest.popitem(last=False)
        return True
