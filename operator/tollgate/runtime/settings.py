"""Operator settings, from environment variables (the Helm chart sets them).

- TOLLGATE_NAMESPACES: comma-separated namespaces to watch; empty (default) watches all.
- TOLLGATE_PROMETHEUS_URL: Prometheus used when a spec names none.
- TOLLGATE_IDLE_RESYNC: seconds between reconciles of a settled rollout (300).
- TOLLGATE_DELETE_TIMEOUT: seconds a deletion may spend returning traffic to primary (30).
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

    @classmethod
    def from_env(cls) -> "Settings":
        names = os.environ.get("TOLLGATE_NAMESPACES", "")
        return cls(
            namespaces=tuple(n.strip() for n in names.split(",") if n.strip()),
            prometheus_url=os.environ.get("TOLLGATE_PROMETHEUS_URL", cls.prometheus_url),
            idle_resync=float(os.environ.get("TOLLGATE_IDLE_RESYNC", cls.idle_resync)),
            delete_timeout=float(os.environ.get("TOLLGATE_DELETE_TIMEOUT", cls.delete_timeout)),
        )
