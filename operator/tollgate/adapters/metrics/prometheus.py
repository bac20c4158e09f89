"""Async Prometheus HTTP API client (httpx): instant queries with a timeout.

Every failure (connection refused, timeout, HTTP error, an error answer, an unexpected result
type) raises :class:`PrometheusError` with a message for status; callers turn it into an Error
verdict, never a pass.
"""

import math
from dataclasses import dataclass
from datetime import datetime

import httpx


class PrometheusError(Exception):
    """A query could not be answered."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


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
        return _samples(body.get("data", {}))


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
