"""The composition root's parts: every adapter a reconcile uses, built once per process."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from tollgate.adapters.kube.client import KubeClient
from tollgate.adapters.kube.events import EventSeries
from tollgate.adapters.kube.recent import Recent
from tollgate.adapters.metrics.batch import MetricsBatcher
from tollgate.adapters.metrics.counts import CountReader
from tollgate.adapters.metrics.prometheus import PrometheusClient
from tollgate.adapters.outbound import PER_ENDPOINT, Outbound
from tollgate.runtime.settings import Settings

OWN_CONNECTIONS = 50  # the operator's configured Prometheus, a pool of its own


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
    outbound: Outbound | None = None  # tenants' endpoints (webhooks); built from http if None
    closing: list[httpx.AsyncClient] = field(default_factory=list)
    recent: Recent = field(default_factory=Recent)  # objects seen lately (claims, Services)

    def __post_init__(self) -> None:
        if self.outbound is None:
            self.outbound = Outbound(self.http)

    @property
    def tenant_calls(self) -> Outbound:
        assert self.outbound is not None
        return self.outbound

    @classmethod
    def create(cls, settings: Settings, kube: KubeClient) -> "Wiring":
        """Two pools: the operator's own Prometheus never waits behind a tenant's endpoint,
        and each tenant endpoint holds at most PER_ENDPOINT of the tenants' pool."""
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=100))
        own = Outbound(
            httpx.AsyncClient(limits=httpx.Limits(max_connections=OWN_CONNECTIONS)),
            per_endpoint=OWN_CONNECTIONS,
        )
        tenants = Outbound(http, per_endpoint=PER_ENDPOINT)
        clients: dict[str, PrometheusClient] = {}
        configured = settings.prometheus_url.rstrip("/")

        def prometheus(address: str) -> PrometheusClient:
            if address not in clients:
                calls = own if address.rstrip("/") == configured else tenants
                clients[address] = PrometheusClient(address, timeout=10.0, client=calls)
            return clients[address]

        wiring = cls(
            settings=settings,
            kube=kube,
            http=http,
            metrics=MetricsBatcher(prometheus),
            counts=CountReader(prometheus),
            outbound=tenants,
        )
        wiring.closing.append(own.client)
        return wiring

    def count(self, name: str, by: int = 1) -> None:
        """Count an operation (status writes, weight writes, queries) for tests and benches."""
        self.stats[name] = self.stats.get(name, 0) + by

    async def aclose(self) -> None:
        await self.http.aclose()
        for client in self.closing:
            await client.aclose()
        await self.kube.aclose()
