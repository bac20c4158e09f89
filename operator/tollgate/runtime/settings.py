"""Operator settings, from environment variables (the Helm chart sets them).

- TOLLGATE_NAMESPACES: comma-separated namespaces to watch; empty (default) watches all.
- TOLLGATE_PROMETHEUS_URL: Prometheus used when a spec names none.
- TOLLGATE_IDLE_RESYNC: seconds between reconciles of a settled rollout (300).
- TOLLGATE_DELETE_TIMEOUT: seconds a deletion may spend returning traffic to primary (30).
- TOLLGATE_ALLOWED_PROMETHEUS: comma-separated Prometheus base URLs a spec may name besides
  TOLLGATE_PROMETHEUS_URL (default: none).
- TOLLGATE_ALLOWED_WEBHOOK_HOSTS: comma-separated hosts (``*.example.svc`` for a suffix) that
  webhook gates and notifications may call (default: none).
- TOLLGATE_WATCH_TIMEOUT: seconds a watch request lasts before the server ends it and the
  stream goes on from where it was (60); a stream silent for 1.5 times as long (a half-open
  connection) is dropped and opened again.
- TOLLGATE_METRICS_ADDRESS: ``host:port`` to serve the operator's /metrics on (default: none;
  ``tollgate run`` serves them on 0.0.0.0:8081).
- TOLLGATE_CROSS_NAMESPACE_QUERIES: ``true`` lets custom queries select series of other
  namespaces (default: false; docs/security.md).
"""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Operator-wide settings."""

    namespaces: tuple[str, ...] = ()
    prometheus_url: str = "http://prometheus.monitoring.svc:9090"
    idle_resync: float = 300.0
    delete_timeout: float = 30.0
    allowed_prometheus: tuple[str, ...] = ()
    allowed_webhook_hosts: tuple[str, ...] = ()
    cross_namespace_queries: bool = False
    watch_timeout: int = 60  # the API server takes whole seconds (timeoutSeconds)
    metrics_address: str = ""

    @classmethod
    def from_env(cls) -> "Settings":
        names = os.environ.get("TOLLGATE_NAMESPACES", "")
        return cls(
            namespaces=tuple(n.strip() for n in names.split(",") if n.strip()),
            prometheus_url=os.environ.get("TOLLGATE_PROMETHEUS_URL", cls.prometheus_url),
            idle_resync=float(os.environ.get("TOLLGATE_IDLE_RESYNC", cls.idle_resync)),
            delete_timeout=float(os.environ.get("TOLLGATE_DELETE_TIMEOUT", cls.delete_timeout)),
            allowed_prometheus=_list("TOLLGATE_ALLOWED_PROMETHEUS"),
            allowed_webhook_hosts=_list("TOLLGATE_ALLOWED_WEBHOOK_HOSTS"),
            cross_namespace_queries=os.environ.get("TOLLGATE_CROSS_NAMESPACE_QUERIES", "").lower()
            in ("1", "true", "yes"),
            watch_timeout=max(1, int(os.environ.get("TOLLGATE_WATCH_TIMEOUT", cls.watch_timeout))),
            metrics_address=os.environ.get("TOLLGATE_METRICS_ADDRESS", "").strip(),
        )


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())
