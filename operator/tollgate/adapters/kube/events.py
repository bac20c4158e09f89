"""Kubernetes Events about a rollout (kubectl describe shows them; alerting can follow them)."""

from datetime import datetime
from typing import Any

from tollgate.adapters.kube.client import KubeClient, KubeError
from tollgate.adapters.kube.resources import EVENTS


async def post_event(
    kube: KubeClient,
    involved: dict[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool,
    now: datetime,
) -> bool:
    """Post one Event about ``involved`` (a whole object); False when the API refused it.

    Failing to post an Event never fails a reconcile.
    """
    meta = involved.get("metadata", {})
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
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
    try:
        await kube.create(EVENTS, meta.get("namespace"), body)
    except KubeError:
        return False
    return True
