"""An app serving a prompt through the Tollgate SDK under simulated traffic, in its own process.

It is what a PromptRelease rolls out to: it watches the published ConfigMap through the API
server (``ConfigMapSource``), picks a version per request by a user key, renders the template,
"calls the model" (a seeded simulation), and records the request with the SDK's metrics, which
the real Prometheus scrapes. Nothing in it knows about rollouts: the split comes from the SDK.

The simulated model reads its behaviour from the version's published parameters, so a
regression is a property of the prompt version, as it is in life: ``sim_ttft_factor`` and
``sim_latency_factor`` slow it down, ``sim_error_share`` makes it fail, ``sim_output_tokens``
makes it wordier (costlier).

Each change of the published revision is logged as a JSON line with the wall time, so a test or
a benchmark can tell when the app switched. Run: ``python -m tollgate.testing.promptapp --help``.
"""

import argparse
import json
import math
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import CollectorRegistry, start_http_server

from tollgate.sdk import Choice, PromptRouter, PromptUnavailable
from tollgate.sdk.metrics import PromptMetrics
from tollgate.testing.prometheus import free_port
from tollgate.testing.traffic import poisson
from tollgate.testing.workload import DEFAULT_PRICES

QUESTIONS = ("How do I reset my password?", "Where is my order?", "Can I get a refund?")


@dataclass(frozen=True)
class Model:
    """The simulated model's behaviour for one version (from its parameters)."""

    ttft_median: float = 0.2
    latency_median: float = 1.0
    sigma: float = 0.3
    error_share: float = 0.005
    output_tokens: int = 300

    @classmethod
    def of(cls, choice: Choice) -> "Model":
        p: dict[str, Any] = dict(choice.parameters)
        base = cls()
        return cls(
            ttft_median=base.ttft_median * float(p.get("sim_ttft_factor", 1.0)),
            latency_median=base.latency_median * float(p.get("sim_latency_factor", 1.0)),
            error_share=float(p.get("sim_error_share", base.error_share)),
            output_tokens=int(p.get("sim_output_tokens", base.output_tokens)),
        )

    def draw(self, rng: random.Random) -> tuple[float, float, bool]:
        """(ttft, duration, failed) of one request."""
        ttft = self.ttft_median * math.exp(rng.gauss(0.0, self.sigma))
        duration = ttft + self.latency_median * math.exp(rng.gauss(0.0, self.sigma))
        return ttft, duration, rng.random() < self.error_share


if TYPE_CHECKING:
    from tollgate.testing.clusterapi import ClusterApi


class PromptApp:
    """The app's request loop: ``rate`` requests per second from ``users`` distinct users."""

    def __init__(
        self,
        router: PromptRouter,
        metrics: PromptMetrics,
        prompt: str,
        rate: float,
        users: int = 5000,
        seed: int = 0,
        log: TextIO | None = None,
    ) -> None:
        self.router = router
        self.metrics = metrics
        self.prompt = prompt
        self.rate = rate
        self.users = users
        self.rng = random.Random(seed)
        self.log = log
        self.served: dict[str, int] = {}
        self.unavailable = 0
        self.revision: int | None = None

    def serve(self, key: str) -> None:
        """One request: choose, render, call the simulated model, record."""
        try:
            choice = self.router.choose(self.prompt, key)
        except PromptUnavailable:
            self.unavailable += 1
            return
        if choice.revision != self.revision:
            self.revision = choice.revision
            doc = self.router.document(self.prompt)
            weights = dict(doc.weights) if doc is not None else {}
            self._log("revision", revision=choice.revision, weights=weights)
        text = choice.render(product="Acme", question=self.rng.choice(QUESTIONS))
        model = Model.of(choice)
        ttft, duration, failed = model.draw(self.rng)
        self.metrics.observe(
            choice,
            duration=duration,
            ttft=None if failed else ttft,
            input_tokens=max(1, len(text) // 4),
            output_tokens=None if failed else model.output_tokens,
            error="ServerError" if failed else None,
        )
        self.served[choice.version] = self.served.get(choice.version, 0) + 1

    def tick(self, seconds: float) -> int:
        n = poisson(self.rng, self.rate * seconds)
        for _ in range(n):
            self.serve(f"user-{self.rng.randrange(self.users)}")
        return n

    def run(self, stop: threading.Event, tick: float = 0.1) -> None:
        began, done = time.monotonic(), 0
        last_report = began
        while not stop.is_set():
            due = math.floor((time.monotonic() - began) / tick)
            for _ in range(due - done):
                self.tick(tick)
            done = max(done, due)
            if time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                self._log("served", served=dict(self.served), unavailable=self.unavailable)
            stop.wait(max(0.0, began + (done + 1) * tick - time.monotonic()))

    def _log(self, event: str, **fields: Any) -> None:
        if self.log is not None:
            self.log.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")
            self.log.flush()


class PromptAppProcess:
    """The app as a child process (``python -m tollgate.testing.promptapp``), for live tests."""

    def __init__(
        self,
        server: str,
        configmap: str,
        prompt: str,
        log: Path,
        *,
        namespace: str = "default",
        rate: float = 200.0,
        seed: int = 0,
        token_file: Path | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.log = log
        self.namespace = namespace
        self.command = [
            sys.executable,
            "-m",
            "tollgate.testing.promptapp",
            f"--server={server}",
            f"--namespace={namespace}",
            f"--configmap={configmap}",
            f"--prompt={prompt}",
            f"--port={self.port}",
            f"--rate={rate}",
            f"--seed={seed}",
            f"--log={log}",
            *([f"--token-file={token_file}"] if token_file else []),
            *([f"--ca-file={ca_file}"] if ca_file else []),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_cluster(
        cls,
        api: "ClusterApi",
        namespace: str,
        configmap: str,
        prompt: str,
        workdir: Path,
        rate: float = 200.0,
    ) -> "PromptAppProcess":
        """The app on a real cluster, as ServiceAccount ``app`` allowed ``configmap`` only."""
        token = workdir / "app.token"
        token.write_text(api.configmap_reader_token(namespace, configmap))
        return cls(
            api.access.server,
            configmap,
            prompt,
            workdir / "app.jsonl",
            namespace=namespace,
            rate=rate,
            token_file=token,
            ca_file=api.access.ca_file,
        )

    @property
    def target(self) -> tuple[str, dict[str, str]]:
        """This app's pod for ``PrometheusServer.set_targets``."""
        return f"127.0.0.1:{self.port}", {"namespace": self.namespace, "pod": "app-5f6d7c8b9-qwxyz"}

    def start(self) -> "PromptAppProcess":
        stderr = self.log.with_suffix(".stderr")
        with stderr.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in read_log(self.log) if kind is None or e["event"] == kind]

    def __enter__(self) -> "PromptAppProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The app's JSON lines (complete ones only)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="Kubernetes API base URL")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--configmap", required=True)
    parser.add_argument("--key", default="prompts.json")
    parser.add_argument("--token-file", type=Path, help="bearer token (a ServiceAccount's)")
    parser.add_argument("--ca-file", type=Path, help="CA bundle of the API server")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--port", type=int, required=True, help="port of /metrics")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", type=Path, help="JSON lines of revisions and counts")
    args = parser.parse_args(argv)

    registry = CollectorRegistry()
    metrics = PromptMetrics(
        registry, DEFAULT_PRICES.input_per_million, DEFAULT_PRICES.output_per_million
    )
    router = PromptRouter.from_configmap(
        args.namespace,
        args.configmap,
        args.key,
        server=args.server,
        token=args.token_file.read_text().strip() if args.token_file else None,
        ca_file=args.ca_file,
        startup_timeout=0.0,
    )
    metrics.track(router)
    server, thread = start_http_server(args.port, addr="127.0.0.1", registry=registry)
    log = args.log.open("a") if args.log else None
    app = PromptApp(router, metrics, args.prompt, args.rate, args.users, args.seed, log)
    stop = threading.Event()
    try:
        app.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        router.close()
        server.shutdown()
        thread.join(timeout=5)
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
