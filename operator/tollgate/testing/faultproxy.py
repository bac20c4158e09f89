"""A fault-injecting proxy in front of a real API server, for tests of the operator under faults.

The real kube-apiserver cannot fail on cue. This proxy listens on loopback (plain HTTP),
forwards every request to the real server as the cluster's admin (client certificate), streams
watches through, logs each request, and, by :class:`tollgate.testing.faults.FaultRule`, answers
chosen requests itself: a 409 storm on status writes, a 429 with Retry-After, 500s, a delay
(a slow API), or watch streams cut after a while. The operator under test gets a kubeconfig
naming the proxy (:meth:`FaultProxy.write_kubeconfig`) and meets everything else for real.
"""

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tollgate.testing.cluster import ClusterAccess, free_port
from tollgate.testing.faults import (
    FaultInjector,
    FaultRule,
    RequestLog,
    RequestRecord,
    reason_for,
)
from tollgate.testing.handler import parse_target

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


@dataclass
class Slowdown:
    """Delay matching requests by ``seconds`` (``resource`` as in FaultRule, or ``*``)."""

    seconds: float
    resource: str = "*"
    method: str = "*"


class FaultProxy:
    """``with FaultProxy(access) as proxy:`` runs the proxy in a thread of its own."""

    def __init__(self, access: ClusterAccess) -> None:
        self.access = access
        self.port = free_port()
        self.faults = FaultInjector()
        self.log = RequestLog()
        self.slowdowns: list[Slowdown] = []
        self.watch_cut_after: float | None = None  # seconds a watch stream lives, when set
        # watch streams opened before this moment (time.monotonic) pass nothing more on, yet
        # stay open: a half-open connection, silent until the client gives up on it
        self.stalled_before: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, method: str, target: str, **kwargs: Any) -> FaultRule:
        """Fail the next matching requests (see :meth:`FaultRule.parse`)."""
        return self.faults.add(FaultRule.parse(method, target, **kwargs))

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [
                {
                    "name": "proxy",
                    "context": {"cluster": "proxy", "user": "proxy", "namespace": namespace},
                }
            ],
            "current-context": "proxy",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def records(self, method: str | None = None, plural: str | None = None) -> list[RequestRecord]:
        return [
            r
            for r in self.log
            if (method is None or r.method == method)
            and (plural is None or r.target.plural == plural)
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        context = self.access.ssl_context()
        connector = aiohttp.TCPConnector(ssl=context, limit=200)
        async with aiohttp.ClientSession(connector=connector) as upstream:
            app = web.Application(client_max_size=64 * 1024 * 1024)

            async def handle(request: web.Request) -> web.StreamResponse:
                return await self._forward(request, upstream)

            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            await site.start()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

    @staticmethod
    async def _hold(request: web.Request) -> None:
        """Neither events nor the server's end of the stream reach the client: it waits until
        it gives up on the connection itself."""
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.2)

    # -- one request -------------------------------------------------------------------------

    async def _forward(
        self, request: web.Request, upstream: aiohttp.ClientSession
    ) -> web.StreamResponse:
        target = parse_target(request.method, request.path)
        body = await request.read()
        watching = request.query.get("watch", "").lower() in ("true", "1")
        for slow in self.slowdowns:
            plural = slow.resource.partition(".")[0]
            if plural in ("*", target.plural) and slow.method in ("*", request.method):
                await asyncio.sleep(slow.seconds)
        rule = self.faults.take(target)
        if rule is not None and not rule.after_write:
            return self._record(request, target, body, self._fault(rule), fault=True)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if self.access.token:
            headers["Authorization"] = f"Bearer {self.access.token}"
        url = f"{self.access.server}{request.rel_url}"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None if watching else 60)
        async with upstream.request(
            request.method, url, data=body or None, headers=headers, timeout=timeout
        ) as answer:
            if rule is not None:  # after_write: the write happened, its answer is lost
                return self._record(request, target, body, self._fault(rule), fault=True)
            response = web.StreamResponse(status=answer.status)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers[key] = value
            await response.prepare(request)
            opened = time.monotonic()
            life = self.watch_cut_after if watching else None
            cut = opened + life if life else None
            try:
                while True:  # at ``cut`` the stream ends as a dropped connection ends it
                    left = None if cut is None else cut - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    try:
                        chunk = await asyncio.wait_for(answer.content.readany(), left)
                    except TimeoutError:
                        break  # a quiet stream is cut on time too
                    if not chunk:
                        break
                    stalled = self.stalled_before is not None and opened < self.stalled_before
                    if watching and stalled:
                        await self._hold(request)
                        break
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                pass  # the client went away (a watch it stopped, an operator killed)
            self._record(request, target, body, response, fault=False)
            return response

    def _fault(self, rule: FaultRule) -> web.Response:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": rule.message or f"injected {rule.status}",
            "reason": reason_for(rule.status),
            "code": rule.status,
        }
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        return web.Response(
            status=rule.status, text=json.dumps(status), content_type="application/json",
            headers=headers,
        )  # fmt: skip

    def _record(
        self,
        request: web.Request,
        target: Any,
        body: bytes,
        response: web.StreamResponse,
        *,
        fault: bool,
    ) -> web.StreamResponse:
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.log.add(
            RequestRecord(
                seq=self.log.next_seq(),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                content_type=request.headers.get("Content-Type", ""),
                status=response.status,
                target=target,
                body=parsed,
                fault=fault,
            )
        )
        return response
