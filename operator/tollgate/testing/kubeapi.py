"""An in-memory Kubernetes API server for the tests that a real one cannot serve (decision 48).

The operator's own tests run on the local control plane (docs/cluster.md). This server, built
on kmock, stays for what a real one cannot do: follow a simulated clock in the in-process
reconcile tests, log exactly which requests one reconcile sent, and lose a response after the
write is stored. It speaks enough of the API for kopf and our httpx client (see
:mod:`tollgate.testing.store` for the semantics) and serves on 127.0.0.1 only.

In-process, in the running asyncio loop::

    async with KubeApiServer() as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")
        ...  # point httpx at api.url, or kopf at api.kopf_connection_info()

As a subprocess (prints ``KUBEAPI_READY url=... port=...`` once serving; stops on SIGTERM)::

    python -m tollgate.testing.kubeapi --port 0 --kubeconfig FILE [--crds DIR]

The ``kubernetes`` package reads ``$KUBECONFIG`` once, when it is imported, and kopf's default
login goes through it: set the variable before anything imports ``kubernetes`` (e.g. in a
``kopf run`` subprocess's environment), pass ``config_file=`` explicitly, or in-process give
kopf a login handler returning :meth:`KubeApiServer.kopf_connection_info`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp.web
import yaml

from tollgate.testing import patches, selection
from tollgate.testing.faults import WRITE_METHODS, FaultRule, RequestLog, RequestRecord
from tollgate.testing.handler import KubeApiHandler
from tollgate.testing.resources import (
    BUILTIN_RESOURCES,
    CRD_SPEC,
    DEFAULT_CRDS_DIR,
    ResourceSpec,
    load_crd_documents,
    specs_from_crd,
)
from tollgate.testing.store import ObjectStore, WatchEvent

if TYPE_CHECKING:
    import kopf

HOST = "127.0.0.1"
DEFAULT_NAMESPACES: tuple[str, ...] = ("default", "kube-system", "kube-public")
READY_MARKER = "KUBEAPI_READY"


class KubeApiServer:
    """The test API server: an HTTP endpoint plus in-process helpers on the same objects.

    ``crds_dir`` defaults to the repo's ``crds/``; ``None`` loads no CRDs. ``port=0`` picks a
    free port. ``history_limit`` bounds the watch event log (older resourceVersions get 410).
    The helpers (:meth:`create`, :meth:`patch`, :meth:`fail_next`, ...) must be called from the
    thread running the server's event loop; other threads and processes go through HTTP.

    ``handler`` is the kmock handler: ``api.handler["get /path"] << 418`` adds an ad-hoc
    reaction that wins over the stored objects. It is served by aiohttp directly rather than by
    ``kmock.Server``, which patches aiohttp's DNS resolver process-wide (kopf's sessions share
    it) and waits a minute at shutdown for open watch streams.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        crds_dir: Path | str | None = DEFAULT_CRDS_DIR,
        resources: Iterable[ResourceSpec] = (),
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        history_limit: int = 10_000,
        request_log_limit: int = 100_000,
        bookmark_interval: float = 30.0,
        shutdown_timeout: float = 2.0,
    ) -> None:
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self.store = ObjectStore(history_limit=history_limit)
        self.handler = KubeApiHandler(
            store=self.store, log=RequestLog(request_log_limit), bookmark_interval=bookmark_interval
        )
        self.store.hooks.append(self._on_change)
        self._runner: aiohttp.web.BaseRunner | None = None
        self._bound_port: int | None = None
        for spec in (*BUILTIN_RESOURCES, *resources):
            self.handler.register(spec)
        for name in namespaces:
            self.create("namespaces", {"metadata": {"name": name}})
        if crds_dir is not None:
            for crd in load_crd_documents(Path(crds_dir)):
                self.create(CRD_SPEC, crd)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.handler.__aenter__()
        # Cancel handlers whose client went away (watch streams would otherwise linger), and
        # no access log: the request log below is the record, with statuses and bodies.
        server = aiohttp.web.Server(self.handler, handler_cancellation=True, access_log=None)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, HOST, self._port)
        await site.start()
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        self.handler.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.handler.active:
            await self.handler.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the server is not started")
        return self._bound_port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- client configuration -----------------------------------------------------------------

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig document pointing at this server (plain HTTP, a dummy token)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "tollgate-test", "cluster": {"server": self.url}}],
            "users": [{"name": "tollgate-test", "user": {"token": "tollgate-test"}}],
            "contexts": [
                {
                    "name": "tollgate-test",
                    "context": {
                        "cluster": "tollgate-test",
                        "user": "tollgate-test",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "tollgate-test",
        }

    def write_kubeconfig(self, path: Path | str, namespace: str = "default") -> Path:
        """Write :meth:`kubeconfig` to ``path``.

        The ``kubernetes`` package reads ``$KUBECONFIG`` once, at import: export it before that
        import (or hand ``config_file=path`` to ``kubernetes.config``) for it to be seen.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace), sort_keys=False))
        return target

    def kopf_connection_info(self, namespace: str = "default") -> kopf.ConnectionInfo:
        """Credentials for an in-process kopf ``@kopf.on.login`` handler (no kubeconfig read)."""
        import kopf

        return kopf.ConnectionInfo(server=self.url, default_namespace=namespace, priority=1000)

    # -- resources ----------------------------------------------------------------------------

    def register(self, spec: ResourceSpec) -> None:
        """Serve one more resource (discovery included)."""
        self.handler.register(spec)

    def resource(self, ref: str | ResourceSpec) -> ResourceSpec:
        """Resolve ``canaries``, ``deployments.apps``, ``v1/configmaps``, a kind or short name."""
        return self.handler.catalogue.resolve(ref)

    def _on_change(self, spec: ResourceSpec, event: WatchEvent) -> None:
        if spec.key != CRD_SPEC.key:
            return
        for served in specs_from_crd(event.object):
            if event.type == "DELETED":
                self.handler.unregister(served)
            else:
                self.handler.register(served)

    # -- objects, in-process (same semantics as HTTP, no request log) -------------------------

    def get(
        self, resource: str | ResourceSpec, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """A copy of the object, or None."""
        return self.store.find(self.resource(resource), namespace, name)

    def list_objects(
        self,
        resource: str | ResourceSpec,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Copies of the objects (all namespaces when ``namespace`` is None)."""
        matchers = [selection.label_matcher(label_selector)]
        return copy.deepcopy(self.store.list_objects(self.resource(resource), namespace, matchers))

    def create(
        self, resource: str | ResourceSpec, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        return self.store.create(self.resource(resource), namespace, body)

    def replace(
        self,
        resource: str | ResourceSpec,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return self.store.replace(
            self.resource(resource), namespace, name, body, subresource=subresource
        )

    def patch(
        self,
        resource: str | ResourceSpec,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = patches.MERGE_PATCH,
    ) -> dict[str, Any]:
        """Merge-patch (or JSON-patch, by ``content_type``) an object."""
        return self.store.patch(
            self.resource(resource),
            namespace,
            name,
            patch,
            content_type=content_type,
            subresource=subresource,
        )

    def patch_status(
        self,
        resource: str | ResourceSpec,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Merge ``status`` into the object's status (via ``/status`` where the kind has it)."""
        spec = self.resource(resource)
        return self.patch(
            spec,
            namespace,
            name,
            {"status": dict(status)},
            subresource="status" if spec.has_status else None,
        )

    def delete(
        self, resource: str | ResourceSpec, namespace: str | None, name: str
    ) -> dict[str, Any]:
        """Delete (or, with finalizers, mark for deletion) an object."""
        return self.store.delete(self.resource(resource), namespace, name)

    def mark_deployment_ready(self, namespace: str, name: str) -> dict[str, Any]:
        """Report the Deployment rolled out, as its controller would (none runs here)."""
        deployment = self.store.get(self.resource("deployments.apps"), namespace, name)
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        generation = int(deployment["metadata"].get("generation", 1))
        status = {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "unavailableReplicas": None,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }
        return self.patch_status("deployments.apps", namespace, name, status)

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy; return that or time out."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(interval)
        return result

    # -- faults and the request log -----------------------------------------------------------

    def fail_next(
        self,
        method: str,
        target: str,
        status: int = 500,
        *,
        times: int = 1,
        namespace: str | None = None,
        message: str | None = None,
        after_write: bool = False,
        retry_after: int | None = None,
    ) -> FaultRule:
        """Fail the next ``times`` requests of ``method`` (or ``*``) on ``target`` with ``status``.

        ``target`` is ``resource[/name[/subresource]]``: ``canaries`` (any request on canaries),
        ``canaries/web`` (the main object only), ``canaries/web/status``, ``canaries/*/status``,
        ``canaries/web/*``; ``resource`` may be qualified (``deployments.apps``). The failure
        happens before the write, or after it is stored with ``after_write`` (a lost response).
        """
        rule = FaultRule.parse(
            method,
            target,
            status=status,
            times=times,
            namespace=namespace,
            message=message,
            after_write=after_write,
            retry_after=retry_after,
        )
        return self.handler.faults.add(rule)

    def clear_faults(self) -> None:
        self.handler.faults.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far (bounded by ``request_log_limit``), oldest first."""
        return list(self.handler.log)

    def clear_requests(self) -> None:
        self.handler.log.clear()

    @property
    def server_errors(self) -> list[Exception]:
        """Unexpected exceptions raised while serving (answered as 500s); API errors excluded."""
        return list(self.handler.errors) if self.handler.active else []

    def writes(
        self,
        resource: str | None = None,
        name: str | None = None,
        *,
        namespace: str | None = None,
        subresource: str | None = "*",
        methods: Sequence[str] = tuple(sorted(WRITE_METHODS)),
        successful: bool = True,
    ) -> list[RequestRecord]:
        """Write requests, filtered: ``subresource="*"`` any, ``None`` main object only;
        ``successful`` keeps only 2xx answers."""
        plural = None if resource is None else self.resource(resource).plural
        return [
            record
            for record in self.handler.log
            if record.method in methods
            and (plural is None or record.target.plural == plural)
            and (name is None or record.target.name == name)
            and (namespace is None or record.target.namespace == namespace)
            and (subresource == "*" or record.target.subresource == subresource)
            and (not successful or 200 <= record.status < 300)
        ]


# -- the subprocess CLI -----------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.testing.kubeapi",
        description="Serve an in-memory Kubernetes API on 127.0.0.1 until SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the server here")
    parser.add_argument("--namespace", default="default", help="the kubeconfig's namespace")
    parser.add_argument(
        "--crds", type=Path, default=DEFAULT_CRDS_DIR, help="directory of CRD YAML files to serve"
    )
    parser.add_argument("--no-crds", action="store_true", help="serve no CRDs")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    crds = None if args.no_crds else args.crds
    async with KubeApiServer(port=args.port, crds_dir=crds) as api:
        line = f"{READY_MARKER} url={api.url} port={api.port}"
        if args.kubeconfig is not None:
            api.write_kubeconfig(args.kubeconfig, args.namespace)
            line += f" kubeconfig={args.kubeconfig}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
