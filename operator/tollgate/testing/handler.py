"""The HTTP face of the test API server: kmock's Kubernetes scaffold plus our object store.

kmock (by kopf's author) gives us discovery (``/api``, ``/apis``, group and version resource
lists, ``/version``), Kubernetes ``Status`` error bodies, JSON and JSON-lines rendering, and its
request DSL for ad-hoc reactions. Its stateful emulator is replaced, and so is its URL parser,
which fails on ``/api/v1/namespaces`` and reads ``/api/v1/namespaces/NAME`` as a namespace.

Requests on resources are served by :class:`~tollgate.testing.store.ObjectStore` directly,
unless a test added its own kmock reactions (``server.handler[...] << ...``), which then take
precedence as kmock's priorities dictate. Every request lands in the request log with its
final status; fault rules fire before storage is touched (or after, with ``after_write``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal.rendering import Response, StreamingError
from typing_extensions import override

from tollgate.testing import patches, selection
from tollgate.testing.faults import (
    FaultInjector,
    FaultRule,
    RequestLog,
    RequestRecord,
    RequestTarget,
    reason_for,
)
from tollgate.testing.resources import ResourceCatalogue, ResourceSpec
from tollgate.testing.store import ApiError, ObjectStore, status_body
from tollgate.testing.watching import WatchRequest, stream_events

_TRUE = ("true", "1", "yes")
#: Without ``timeoutSeconds``, real servers end a watch after 30-60 minutes; so do we.
DEFAULT_WATCH_TIMEOUT = 1800.0


def parse_target(method: str, path: str) -> RequestTarget:
    """Split an API path into group, version, namespace, plural, name and subresource."""
    segments = [urllib.parse.unquote(part) for part in path.strip("/").split("/") if part]
    if len(segments) >= 2 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    elif len(segments) == 2 and segments[0] == "apis":
        return RequestTarget(method, group=segments[1])
    else:
        return RequestTarget(method)
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    return RequestTarget(
        method,
        group=group,
        version=version,
        plural=rest[0] if rest else None,
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
    )


def _k8s_error(exc: ApiError) -> kmock.KubernetesError:
    return kmock.KubernetesError(
        status=exc.status, reason=exc.reason, message=exc.message, details=exc.details or None
    )


def _guess_action(target: RequestTarget, watch: bool) -> kmock.action | None:
    if target.plural is None:
        return None
    if target.method == "GET":
        return (
            kmock.action.WATCH
            if watch
            else kmock.action.FETCH
            if target.name
            else kmock.action.LIST
        )
    if target.name is None:
        return kmock.action.CREATE if target.method == "POST" else None
    return {"PATCH": kmock.action.UPDATE, "DELETE": kmock.action.DELETE}.get(target.method)


@attrs.define(kw_only=True)
class KubeApiHandler(kmock.KubernetesScaffold):
    """A kmock handler serving resources from an :class:`ObjectStore`."""

    store: ObjectStore = attrs.field(factory=ObjectStore)
    catalogue: ResourceCatalogue = attrs.field(factory=ResourceCatalogue)
    faults: FaultInjector = attrs.field(factory=FaultInjector)
    log: RequestLog = attrs.field(factory=RequestLog)
    bookmark_interval: float = 30.0
    _closed: bool = attrs.field(default=False, init=False)
    _builtin_payloads: int = attrs.field(default=0, init=False)
    _faulted: set[int] = attrs.field(factory=set, init=False)
    _streaming: set[int] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for probe in ("/healthz", "/livez", "/readyz"):
            self.fallback[f"get {probe}"] << b"ok"
        self.fallback[self._is_resource_request] << self._serve_resource
        self._builtin_payloads = len(self._payloads)

    # -- catalogue ----------------------------------------------------------------------------

    def register(self, spec: ResourceSpec) -> None:
        """Serve a resource and announce it in discovery."""
        self.catalogue.add(spec)
        self.resources[kmock.resource(spec.group, spec.version, spec.plural)] = kmock.ResourceInfo(
            kind=spec.kind,
            singular=spec.singular or spec.kind.lower(),
            namespaced=spec.namespaced,
            verbs=set(spec.verbs),
            shortnames=set(spec.short_names),
            categories=set(spec.categories),
            subresources=set(spec.subresources),
        )

    def unregister(self, spec: ResourceSpec) -> None:
        self.catalogue.remove(spec)
        key = kmock.resource(spec.group, spec.version, spec.plural)
        if key in self.resources:
            del self.resources[key]

    def close(self) -> None:
        """End every watch stream now (they would otherwise hold the server's shutdown)."""
        self._closed = True
        self.store.poke()

    # -- request entry ------------------------------------------------------------------------

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        seq = self.log.next_seq()
        target = parse_target(raw_request.method.upper(), raw_request.path)
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = None
        watch = raw_request.query.get("watch", "").lower() in _TRUE
        request = kmock.Request(
            id=seq,
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=body.decode("utf-8", errors="replace"),
            data=data,
            action=_guess_action(target, watch),
            resource=None
            if target.group is None
            else kmock.resource(group=target.group, version=target.version, plural=target.plural),
            namespace=target.namespace,
            name=target.name,
            subresource=target.subresource,
        )
        status = 500
        try:
            response = await self._handle(request)
            status = response.status
            return response
        except kmock.KubernetesError as exc:
            status = exc.status
            return await self._render_error(exc)
        except asyncio.CancelledError:
            # The client went away (watches end so): 200 if the stream had started, else 499.
            status = 200 if seq in self._streaming else 499
            raise
        except StreamingError as exc:
            raw_response: aiohttp.web.StreamResponse = exc.args[0]
            status = raw_response.status
            cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            try:
                await self._stream_error(cause, raw_response)
                await raw_response.write_eof()
            except ConnectionError:
                pass
            return raw_response
        except Exception as exc:
            if self._errors:
                self._errors[-1].append(exc)
            return await self._render_error(exc)
        finally:
            self.log.add(
                RequestRecord(
                    seq=seq,
                    method=target.method,
                    path=raw_request.path,
                    query=dict(raw_request.query),
                    content_type=patches.normalize_content_type(raw_request.content_type)
                    if body
                    else "",
                    status=status,
                    target=target,
                    body=data,
                    fault=seq in self._faulted,
                )
            )
            self._faulted.discard(seq)
            self._streaming.discard(seq)

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # The fast path skips kmock's reaction matching (which also keeps every request in
        # memory) unless a test added reactions of its own.
        if self._is_resource_request(request) and len(self._payloads) == self._builtin_payloads:
            return await Response(payload=self._serve_resource)(request)
        self._requests.append(request)  # kmock's reactions only see requests recorded here
        return await super()._handle(request)

    @staticmethod
    def _is_resource_request(request: kmock.Request) -> bool:
        return request.resource is not None and request.resource.plural is not None

    # -- resources ----------------------------------------------------------------------------

    @override
    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        # kmock spells the core group's version "/v1"; clients expect "v1".
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"][1:]
        return payload

    @override
    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesError):
            details = exc.details if isinstance(exc.details, dict) else None
            body = status_body(exc.status, exc.reason or "", exc.message or "", details)
            return aiohttp.web.json_response(body, status=exc.status)
        return await super()._render_error(exc)

    async def _serve_resource(self, request: kmock.Request) -> kmock.Payload:
        target = parse_target(str(request.method.value).upper(), request.url.path)
        try:
            spec = self._resolve(target)
            rule = self._take_fault(request, target, spec)
            if rule is not None and not rule.after_write:
                raise self._fault_error(request, rule, spec)
            payload = await self._dispatch(request, target, spec)
            if rule is not None:
                raise self._fault_error(request, rule, spec)
            return payload
        except ApiError as exc:
            raise _k8s_error(exc) from exc

    def _resolve(self, target: RequestTarget) -> ResourceSpec:
        assert target.group is not None
        assert target.version is not None
        assert target.plural is not None
        spec = self.catalogue.get(target.group, target.version, target.plural)
        if spec is None or (target.namespace is not None and not spec.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.subresource is not None and (
            target.subresource != "status" or not spec.has_status or target.name is None
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return spec

    def _take_fault(
        self, request: kmock.Request, target: RequestTarget, spec: ResourceSpec
    ) -> FaultRule | None:
        name = target.name
        if name is None and target.method == "POST" and isinstance(request.data, dict):
            name = (request.data.get("metadata") or {}).get("name")
        return self.faults.take(
            RequestTarget(
                target.method,
                spec.group,
                spec.version,
                spec.plural,
                target.namespace,
                name,
                target.subresource,
            )
        )

    def _fault_error(self, request: kmock.Request, rule: FaultRule, spec: ResourceSpec) -> ApiError:
        self._faulted.add(request.id)
        name = request.name or ""
        details: dict[str, Any] = {"name": name, "group": spec.group, "kind": spec.plural}
        if rule.retry_after is not None:
            details["retryAfterSeconds"] = rule.retry_after
        message = rule.message or f"injected fault: {rule.method} {spec.qualified} {name}".strip()
        return ApiError(rule.status, reason_for(rule.status), message, details)

    async def _dispatch(
        self, request: kmock.Request, target: RequestTarget, spec: ResourceSpec
    ) -> kmock.Payload:
        params = request.params
        method = target.method
        if method == "GET" and params.get("watch", "").lower() in _TRUE:
            return self._watch_response(request.id, target, spec, params)
        if method == "GET" and target.name is None:
            return self._list(target, spec, params)
        if method == "GET":
            return self.store.get(spec, target.namespace, target.name or "")
        if method == "POST" and target.name is None:
            created = self.store.create(spec, target.namespace, self._body(request))
            return Response(status=201, payload=created)
        if method == "PUT" and target.name:
            return self.store.replace(
                spec,
                target.namespace,
                target.name,
                self._body(request),
                subresource=target.subresource,
            )
        if method == "PATCH" and target.name:
            content_type = next(
                (str(v) for k, v in request.headers.items() if k.lower() == "content-type"), ""
            )
            if request.data is None:
                raise ApiError(400, "BadRequest", "the PATCH body is missing or is not JSON")
            return self.store.patch(
                spec,
                target.namespace,
                target.name,
                request.data,
                content_type=content_type,
                subresource=target.subresource,
            )
        if method == "DELETE" and target.name:
            options = request.data if isinstance(request.data, dict) else {}
            return self.store.delete(
                spec, target.namespace, target.name, preconditions=options.get("preconditions")
            )
        if method == "DELETE":
            items = self.store.list_objects(spec, target.namespace, self._matchers(params))
            deleted = [
                self.store.delete(spec, item["metadata"].get("namespace"), item["metadata"]["name"])
                for item in list(items)
            ]
            return self._list_body(spec, deleted)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on this path")

    @staticmethod
    def _body(request: kmock.Request) -> dict[str, Any]:
        if not isinstance(request.data, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        return request.data

    @staticmethod
    def _matchers(params: Any) -> list[selection.Matcher]:
        try:
            return [
                selection.label_matcher(params.get("labelSelector")),
                selection.field_matcher(params.get("fieldSelector")),
            ]
        except selection.SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc

    def _list_body(
        self, spec: ResourceSpec, items: list[dict[str, Any]], token: str | None = None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        if token:
            metadata["continue"] = token
        return {
            "apiVersion": spec.api_version,
            "kind": spec.list_kind,
            "metadata": metadata,
            "items": items,
        }

    def _list(self, target: RequestTarget, spec: ResourceSpec, params: Any) -> dict[str, Any]:
        items = self.store.list_objects(spec, target.namespace, self._matchers(params))
        try:
            offset = int(params.get("continue") or 0)
            limit = int(params.get("limit") or 0)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", "invalid limit or continue token") from exc
        token = None
        if limit > 0 and offset + limit < len(items):
            token = str(offset + limit)
        items = items[offset : offset + limit] if limit > 0 else items[offset:]
        return self._list_body(spec, items, token)

    # -- watching -----------------------------------------------------------------------------

    def _watch_response(
        self, seq: int, target: RequestTarget, spec: ResourceSpec, params: Any
    ) -> Response:
        matchers = self._matchers(params)
        if target.name is not None:
            matchers.append(selection.field_matcher(f"metadata.name={target.name}"))
        since_text = params.get("resourceVersion") or ""
        try:
            since = None if since_text in ("", "0") else int(since_text)
            timeout = float(params.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", "invalid resourceVersion or timeoutSeconds") from exc
        watch = WatchRequest(
            spec,
            target.namespace,
            matchers,
            since=since,
            timeout=timeout,
            bookmarks=params.get("allowWatchBookmarks", "").lower() in _TRUE,
            initial_events=params.get("sendInitialEvents", "").lower() in _TRUE,
        )
        return Response(
            headers={"Content-Type": "application/json"}, payload=self._watch(seq, watch)
        )

    async def _watch(self, seq: int, watch: WatchRequest) -> AsyncIterator[kmock.Payload]:
        self._streaming.add(seq)
        yield b""  # send the headers now: clients wait for them before anything happens
        events = stream_events(
            self.store, watch, bookmark_interval=self.bookmark_interval, closed=lambda: self._closed
        )
        async for event in events:
            yield event
