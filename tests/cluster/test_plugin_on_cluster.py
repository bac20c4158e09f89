"""``kubectl tollgate`` against the real operator on the real control plane, as a person and a
CI job use it: list and get (also watched), pause and promote past the pause, wait for the end
with the exit codes pipelines branch on, abort, and one-line errors for what is not there."""

import asyncio
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.metrics_reading import assert_the_rollout_was_recorded, prometheus, value
from tests.cluster.world import CANARIES, ON_A_CLUSTER, World, operated
from tollgate.api.status import Phase
from tollgate.cli.main import build_parser
from tollgate.cli.plugin import run
from tollgate.testing.cluster import ClusterAccess
from tollgate.testing.prometheus import PrometheusServer

pytestmark = ON_A_CLUSTER
__all__ = ["prometheus"]  # the fixture
# two steps (25%, 50%) of 2 s: short rollouts, a pause in the middle of one
TWO_STEPS = {
    "skipAnalysis": True,
    "analysis": {"interval": "2s", "stepWeight": 25, "maxWeight": 50, "progressDeadline": "1m"},
}


def executable(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl tollgate ARGS`` as a process (``kubectl-tollgate`` is this module's CLI)."""
    command = [sys.executable, "-m", "tollgate.cli.main", *args, "-n", world.namespace,
               f"--kubeconfig={world.access.kubeconfig}"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=90)


@dataclass
class Ran:
    returncode: int
    stdout: str


def plugin(world: World, *args: str) -> Ran:
    """The same command in this process (a second a call less than a new interpreter)."""
    parsed = build_parser().parse_args(
        [*args, "-n", world.namespace, f"--kubeconfig={world.access.kubeconfig}"]
    )
    out = io.StringIO()
    code = run(parsed, out)
    return Ran(code, out.getvalue())


async def in_thread(world: World, *args: str) -> Ran:
    return await asyncio.to_thread(plugin, world, *args)


async def test_follow_steer_and_wait_for_rollouts(
    tollgate_cluster: ClusterAccess, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    """Also what the operator's /metrics told a real Prometheus meanwhile (``tollgate run``,
    as the chart runs it)."""
    async with operated(tollgate_cluster, tmp_path, TWO_STEPS, peering=True) as world:
        prometheus.set_targets([(f"127.0.0.1:{world.operator.metrics_port}", {"job": "tollgate"})])
        await world.until(lambda: world.status().phase is Phase.SUCCEEDED)
        listed = executable(world, "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split("\n")[1].split()[:3] == ["Canary", "app", "Succeeded"]
        as_json = json.loads(plugin(world, "get", "canary/app", "-o", "json").stdout)
        assert as_json["kind"] == "Canary"

        # a release, paused on request, then promoted past the pause; status waits for the end
        world.release("app:2")
        waiting = asyncio.ensure_future(in_thread(world, "status", "app", "--timeout", "90s"))
        watched = asyncio.ensure_future(in_thread(world, "get", "app", "-w", "--timeout", "6s"))
        await world.until(lambda: world.status().current_step >= 1)
        paused = plugin(world, "pause", "app", "--timeout", "30s")
        assert paused.returncode == 0
        assert "pause: acknowledged; Paused" in paused.stdout
        assert not waiting.done()  # still paused, not promoted
        refused = executable(world, "pause", "app", "--timeout", "1ms")  # paused: harmless
        assert refused.returncode == 4  # asked, not acknowledged in time: exit 4, one line
        assert refused.stderr.count("\n") == 1
        promoted = plugin(world, "promote", "app", "--timeout", "30s")
        assert promoted.returncode == 0
        done = await waiting
        assert done.returncode == 0, done.stdout
        assert "Succeeded (Promoted)" in done.stdout
        frames = (await watched).stdout.count("├── phase")
        assert frames >= 3  # redrawn on changes, from a watch
        selector = f'kind="Canary",namespace="{world.namespace}",name="app"'
        succeeded = f'tollgate_rollout_phase{{{selector},phase="Succeeded"}}'
        await world.until(lambda: value(prometheus, succeeded) == 1, 15)
        assert_the_rollout_was_recorded(world, prometheus, selector, peak=50, steps=2)

        # another release, held, then aborted: status says rolled back (exit 1)
        world.release("app:3")
        await world.until(lambda: world.status().current_step >= 1)
        assert plugin(world, "pause", "app").returncode == 0
        assert plugin(world, "status", "app", "--timeout", "1s").returncode == 4  # in flight
        aborted = plugin(world, "abort", "app", "--timeout", "30s")
        assert aborted.returncode == 0
        ended = plugin(world, "status", "app", "--timeout", "60s")
        assert ended.returncode == 1, ended.stdout
        explained = plugin(world, "explain", "app").stdout
        assert explained.startswith("Canary app is RolledBack (Aborted).")
        history = plugin(world, "history", "app").stdout
        assert "Aborted" in history
        assert "Promoted" in history

        # a spec the operator refuses: stalled (exit 3)
        patch = {"spec": {"metrics": {"prometheus": {"address": "http://elsewhere:9090"}}}}
        world.api.patch(f"{CANARIES.format(ns=world.namespace)}/app", content=json.dumps(patch),
                        headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()  # fmt: skip  # noqa: E501
        stalled = plugin(world, "status", "app", "--timeout", "30s")
        assert stalled.returncode == 3, stalled.stdout

        missing = executable(world, "get", "nosuch")
        assert missing.returncode == 5
        assert missing.stderr.strip() == (
            f"kubectl tollgate: no Canary or PromptRelease nosuch in namespace {world.namespace}"
        )
        bad = executable(world, "status", "app", "--timeout", "soon")
        assert bad.returncode == 2
        assert "Traceback" not in bad.stderr
