"""Async Prometheus HTTP API client (httpx): instant queries with a timeout.

Every failure (connection refused, timeout, HTTP error, an error answer, an unexpected result
type) raises :class:`PrometheusError` with a message for status; callers turn it into an Error
verdict, never a pass. So does a *partial* answer: one carrying ``warnings`` (Thanos and Cortex
answer so when a store or a querier is down, Prometheus when a remote read fails). Its data
lacks an unknown part of the series, so it is raised as :class:`PartialResponseError`, never
handed back as if it were complete.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx


class PrometheusError(Exception):
    """A query could not be answered."""


class PartialResponseError(PrometheusError):
    """Prometheus answered, but said (``warnings``) that part of the data is missing."""

    def __init__(self, warnings: Sequence[str]) -> None:
        self.warnings = tuple(str(w) for w in warnings)
        super().__init__(f"partial response: {'; '.join(self.warnings)}")


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One element of a range vector: the raw samples ``(unix seconds, value)``, oldest first."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


class PrometheusClient:
    """Instant queries against one Prometheus base URL."""

    def __init__(self, base_url: str, timeout: float, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client = client or httpx.AsyncClient()
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def instant(
        self, query: str, at: datetime | None = None, timeout: float | None = None
    ) -> list[Sample]:
        """Evaluate ``query`` at ``at`` (now when None); raise PrometheusError on any failure."""
        return _samples(await self._query(query, at, timeout))

    async def matrix(
        self, query: str, at: datetime | None = None, timeout: float | None = None
    ) -> list[Series]:
        """The raw samples of a range selector (``metric{...}[5m]``) evaluated at ``at``."""
        data = await self._query(query, at, timeout)
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise PrometheusError(f"expected a range vector, got {data.get('resultType')}")
        return [
            Series(
                dict(item["metric"]),
                tuple((float(t), _number(v)) for t, v in item.get("values", ())),
            )
            for item in result
        ]

    async def _query(self, query: str, at: datetime | None, timeout: float | None) -> Any:
        limit = self.timeout if timeout is None else timeout
        form = {"query": query}
        if at is not None:
            form["time"] = f"{at.timestamp():.3f}"
        try:
            response = await self._client.post(
                f"{self.base_url}/api/v1/query", data=form, timeout=limit
            )
        except httpx.TimeoutException as exc:
            raise PrometheusError(f"timeout after {limit:g}s") from exc
        except httpx.HTTPError as exc:
            raise PrometheusError(f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise PrometheusError(f"HTTP {response.status_code}: not JSON") from exc
        if response.status_code >= 400 or body.get("status") != "success":
            raise PrometheusError(
                f"HTTP {response.status_code}: {body.get('errorType', 'error')}: "
                f"{body.get('error', 'unknown error')}"
            )
        warnings = body.get("warnings")
        if warnings:
            raise PartialResponseError(warnings if isinstance(warnings, list) else [warnings])
        return body.get("data", {})


def _samples(data: dict[str, object]) -> list[Sample]:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return [Sample({}, _number(result[1]))]
    if kind != "vector" or not isinstance(result, list):
        raise PrometheusError(f"expected an instant vector, got {kind}")
    return [Sample(dict(item["metric"]), _number(item["value"][1])) for item in result]


def _number(text: object) -> float:
    try:
        return float(str(text))
    except ValueError:
        return math.nan
