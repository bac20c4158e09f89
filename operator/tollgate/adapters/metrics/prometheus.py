"""Async Prometheus HTTP API client (httpx): instant queries with a timeout.

Every failure (connection refused, timeout, HTTP error, an error answer, an unexpected result
type) raises :class:`PrometheusError` with a message for status; callers turn it into an Error
verdict, never a pass. So does a *partial* answer: one carrying ``warnings`` (Thanos and Cortex
answer so when a store or a querier is down, Prometheus when a remote read fails). Its data
lacks an unknown part of the series, so it is raised as :class:`PartialResponseError`, never
handed back as if it were complete.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tollgate.adapters.outbound import CallError, Outbound, excerpt


class PrometheusError(Exception):
    """A query could not be answered."""


class PartialResponseError(PrometheusError):
    """Prometheus answered, but said (``warnings``) that part of the data is missing."""

    def __init__(self, warnings: Sequence[str]) -> None:
        self.warnings = tuple(excerpt(str(w)) for w in list(warnings)[:3])
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
    """Instant queries against one Prometheus base URL, through :class:`Outbound`'s bounds."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        client: httpx.AsyncClient | Outbound | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._owns_client = client is None
        if isinstance(client, Outbound):
            self._outbound = client
        else:
            self._outbound = Outbound(client or httpx.AsyncClient())

    async def aclose(self) -> None:
        if self._owns_client:
            await self._outbound.client.aclose()

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
            answer = await self._outbound.request(
                "POST", f"{self.base_url}/api/v1/query", data=form, timeout=limit
            )
        except CallError as exc:
            raise PrometheusError(str(exc)) from exc
        try:
            body = json.loads(answer.body)
        except ValueError as exc:
            raise PrometheusError(f"HTTP {answer.status_code}: not JSON") from exc
        if not isinstance(body, dict):
            raise PrometheusError(f"HTTP {answer.status_code}: not a Prometheus answer")
        if answer.status_code >= 400 or body.get("status") != "success":
            # someone else's text: a short, printable excerpt only
            raise PrometheusError(
                f"HTTP {answer.status_code}: {excerpt(str(body.get('errorType', 'error')), 40)}: "
                f"{excerpt(str(body.get('error', 'unknown error')))}"
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
