"""Calls to endpoints that tenants name (their Prometheus, their webhooks), bounded three ways.

One operator serves every namespace, so one tenant's endpoint must not delay another tenant's
decisions. Before, timeouts were per read (a trickling endpoint held a reconcile, and with it
its aborts and rollbacks, indefinitely), one pool of 100 connections served every tenant (100
slow webhook gates made another tenant's queries time out), and answers had no size limit (a
50 MB answer took the operator from 76 MB to 935 MB). Here every call has:

* a **total deadline**: waiting for a connection slot, connecting, sending and reading the
  whole answer, all within the call's timeout;
* a **size cap**: the answer is read in chunks and the call fails once it passes the cap;
* a **bounded share**: at most ``per_endpoint`` calls in flight per endpoint (scheme, host,
  port), so one endpoint holds a small part of the pool, whatever it does.
"""

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

MAX_ANSWER_BYTES = 8 * 1024 * 1024
PER_ENDPOINT = 8


class CallError(Exception):
    """A call that did not complete within its bounds (the message says which, for status)."""


class AnswerTooLargeError(CallError):
    """The answer passed the size cap."""


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer, read within the bounds."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


def endpoint_of(url: str) -> str:
    """The share key of a URL: scheme, host and port."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host}:{port}"


class Outbound:
    """The one way the operator calls a tenant's endpoint."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        per_endpoint: int = PER_ENDPOINT,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.client = client
        self.per_endpoint = per_endpoint
        self.max_bytes = max_bytes
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _slot(self, url: str) -> asyncio.Semaphore:
        key = endpoint_of(url)
        if key not in self._slots:
            self._slots[key] = asyncio.Semaphore(self.per_endpoint)
        return self._slots[key]

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> Answer:
        """One call, complete within ``timeout`` seconds and ``max_bytes``, or CallError."""
        cap = self.max_bytes if max_bytes is None else max_bytes
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                async with self._slot(url):
                    left = max(0.001, timeout - (time.monotonic() - started))
                    async with self.client.stream(method, url, timeout=left, **kwargs) as resp:
                        body = bytearray()
                        async for chunk in resp.aiter_bytes():
                            body += chunk
                            if len(body) > cap:
                                raise AnswerTooLargeError(
                                    f"answer larger than {cap:,} bytes: refused"
                                )
                        return Answer(resp.status_code, dict(resp.headers), bytes(body))
        except TimeoutError as exc:
            raise CallError(f"no complete answer within {timeout:g}s") from exc
        except httpx.TimeoutException as exc:
            raise CallError(f"no complete answer within {timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise CallError(f"{type(exc).__name__}: {excerpt(str(exc))}") from exc


def excerpt(text: str, limit: int = 200) -> str:
    """A short, printable excerpt of text someone else wrote (never the whole of it)."""
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
