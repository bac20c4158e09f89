"""The composition root's parts: every adapter a reconcile uses, built once per process."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.events import EventSeries
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.runtime.settings import Settings


def utcnow() -> datetime:
    """The wall clock, in UTC (the engine never reads it; the runtime passes it in)."""
    return datetime.now(UTC)


@dataclass
class Wiring:
    """Clients shared by all reconciles of one operator process."""

    settings: Settings
    kube: KubeClient
    http: httpx.AsyncClient
    metrics: MetricsBatcher
    counts: CountReader
    now: Callable[[], datetime] = utcnow
    events: EventSeries = field(default_factory=EventSeries)
    stats: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, kube: KubeClient) -> "Wiring":
        http = httpx.AsyncClient()
        clients: dict[str, PrometheusClient] = {}

        def prometheus(address: str) -> PrometheusClient:
            if address not in clients:
                clients[address] = PrometheusClient(address, timeout=10.0, client=http)
            return clients[address]

        return cls(
            settings=settings,
            kube=kube,
            http=http,
            metrics=MetricsBatcher(prometheus),
            counts=CountReader(prometheus),
        )

    def count(self, name: str, by: int = 1) -> None:
        """Count an operation (status writes, weight writes, queries) for tests and benches."""
        self.stats[name] = self.stats.get(name, 0) + by

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.kube.aclose()
