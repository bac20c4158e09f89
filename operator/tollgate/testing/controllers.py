"""Stand-ins for the cluster's own controllers, which the API test server does not run.

``DeploymentController`` reports every Deployment rolled out shortly after its spec changes,
as the real controller would once pods are up; names in ``hold`` stay unready (a canary that
never becomes ready, a stuck promotion).
"""

import asyncio
import contextlib
from types import TracebackType

from tollgate.testing.kubeapi import KubeApiServer


class DeploymentController:
    """Marks Deployments ready ``delay`` seconds after each new generation."""

    def __init__(self, api: KubeApiServer, delay: float = 0.0, period: float = 0.05) -> None:
        self.api = api
        self.delay = delay
        self.period = period
        self.hold: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}

    def sweep(self, now: float) -> None:
        """One pass: report ready what has waited long enough."""
        for deployment in self.api.list_objects("deployments.apps"):
            meta = deployment["metadata"]
            key = (meta["namespace"], meta["name"])
            generation = int(meta.get("generation", 1))
            observed = int((deployment.get("status") or {}).get("observedGeneration", 0))
            if observed >= generation or key in self.hold:
                continue
            first_seen = self._seen.get(key)
            if first_seen is None or first_seen[0] != generation:
                self._seen[key] = (generation, now)
                first_seen = self._seen[key]
            if now - first_seen[1] >= self.delay:
                self.api.mark_deployment_ready(*key)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.sweep(loop.time())
            await asyncio.sleep(self.period)

    async def __aenter__(self) -> "DeploymentController":
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
