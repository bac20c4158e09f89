"""Fake workload pods: each exposes the "prometheus" preset's metrics with known behaviour.

The operator sees versions only through Prometheus, so tests, the demo and benchmarks need pods
whose metrics follow a known profile and can regress on demand (slower, failing, slower first
token, costlier). One :class:`WorkloadExporter` is one pod:

* its own ``CollectorRegistry``, so :meth:`WorkloadExporter.reset` can do what a process restart
  does to counters (a fresh registry, every series back to zero) without touching other pods;
* served over loopback HTTP from a thread, so a scrape never waits for the caller's event loop
  and recording never waits for a scrape; a lock makes every scrape a consistent snapshot;
* no extra labels: namespace and pod come from the scrape target's labels, as with Kubernetes
  service discovery, and the pod name must read ``<deployment>-<hash>-<suffix>`` for the
  operator's workload regex (:func:`pod_name` makes one).

Requests are drawn, not replayed: :meth:`WorkloadExporter.record` takes the caller's
``random.Random`` so a seeded simulator gets the same metrics every run.
"""

import hashlib
import math
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# The preset's buckets; prometheus_client keeps an explicit +Inf last.
BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, math.inf)
# Pod-template hashes use this alphabet (no vowels, no look-alike digits).
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Prices:
    """Token prices per million; the defaults are those of examples/promptrelease.yaml."""

    input_per_million: float = 0.15
    output_per_million: float = 0.60

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


DEFAULT_PRICES = Prices()


@dataclass(frozen=True)
class Profile:
    """How a healthy version behaves.

    Latency and time to first token are lognormal around their medians with the same spread
    (p95 = median * e^(1.645 sigma), 1.93x the median at sigma 0.4) and drawn independently.
    Token counts are the same for every request: cost checks compare means, and spread there
    would only add noise. Output tokens dominate the cost at the default prices, so
    ``cost_factor=1.5`` makes a request about 1.5x as expensive (1.47x).
    """

    latency_median: float = 0.1
    latency_sigma: float = 0.4
    error_share: float = 0.005
    ttft_median: float = 0.05
    input_tokens: int = 200
    output_tokens: int = 800


def pod_name(deployment: str, seed: int | str = 0) -> str:
    """A stable pod name ``<deployment>-<9-char hash>-<5-char suffix>`` like a ReplicaSet's."""
    digest = hashlib.sha256(f"{deployment}/{seed}".encode()).digest()
    chars = "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:14])
    return f"{deployment}-{chars[:9]}-{chars[9:]}"


class _Metrics:
    """One process lifetime of metrics: a registry and the series in it, all starting at 0."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.duration = Histogram(
            "http_request_duration_seconds", "Request latency.", buckets=BUCKETS, registry=r
        )
        requests = Counter("http_requests_total", "Requests by status code.", ["code"], registry=r)
        # Both codes exist from the start, so Prometheus sees a 0 before the first error.
        self.ok = requests.labels(code="200")
        self.failed = requests.labels(code="500")
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds", "Time to first token.", buckets=BUCKETS, registry=r
        )
        self.input_tokens = Counter("llm_input_tokens_total", "Prompt tokens.", registry=r)
        self.output_tokens = Counter("llm_output_tokens_total", "Completion tokens.", registry=r)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exporter: "WorkloadExporter"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body = self.server.exporter.render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base's name)
        """Scrapes every second would flood the test output."""


class WorkloadExporter:
    """One simulated pod: records drawn requests and serves them on ``/metrics``.

    The regression knobs are plain attributes, read on every :meth:`record`, so they can be
    switched while traffic flows: ``latency_factor`` and ``ttft_factor`` scale every draw (2.0
    doubles p95), ``error_share`` overrides the profile's (a spike), ``cost_factor`` scales the
    output tokens of each request.
    """

    def __init__(
        self, namespace: str, pod: str, profile: Profile | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.namespace = namespace
        self.pod = pod
        self.profile = profile or Profile()
        self.host = host
        self.latency_factor = 1.0
        self.ttft_factor = 1.0
        self.cost_factor = 1.0
        self.error_share: float | None = None
        self.scrapes = 0  # answered /metrics requests, to see when Prometheus came by
        self._lock = threading.Lock()
        self._metrics = _Metrics()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- serving -------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free loopback port; returns at once (the server runs in a thread)."""
        if self._server is not None:
            raise RuntimeError("exporter already started")
        server = _Server((self.host, 0), _Handler)
        server.exporter = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"exporter-{self.pod}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (blocks for at most one 50 ms poll); the metrics are kept."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """``host:port`` to scrape."""
        if self._server is None:
            raise RuntimeError("exporter not started")
        return f"{self.host}:{self._server.server_address[1]}"

    @property
    def labels(self) -> dict[str, str]:
        """Target labels, as Kubernetes service discovery would attach them."""
        return {"namespace": self.namespace, "pod": self.pod}

    @property
    def target(self) -> tuple[str, dict[str, str]]:
        """This pod as one entry for ``PrometheusServer.set_targets``."""
        return self.address, self.labels

    def render(self) -> bytes:
        """The exposition text of one consistent moment."""
        with self._lock:
            self.scrapes += 1
            return generate_latest(self._metrics.registry)

    # -- traffic -------------------------------------------------------------------------

    def record(self, n: int, rng: random.Random) -> None:
        """Record ``n`` requests drawn from the profile and the regressions now switched on."""
        if n <= 0:
            return
        p = self.profile
        share = p.error_share if self.error_share is None else self.error_share
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"error share must be within 0..1, not {share}")
        latency_mu = math.log(p.latency_median * self.latency_factor)
        ttft_mu = math.log(p.ttft_median * self.ttft_factor)
        draws = [
            (
                rng.lognormvariate(latency_mu, p.latency_sigma),
                rng.lognormvariate(ttft_mu, p.latency_sigma),
            )
            for _ in range(n)
        ]
        errors = sum(rng.random() < share for _ in range(n))
        output = round(p.output_tokens * self.cost_factor)
        with self._lock:
            m = self._metrics
            for latency, ttft in draws:
                m.duration.observe(latency)
                m.ttft.observe(ttft)
            m.ok.inc(n - errors)
            m.failed.inc(errors)
            m.input_tokens.inc(n * p.input_tokens)
            m.output_tokens.inc(n * output)

    def reset(self) -> None:
        """A process restart: a fresh registry, every counter and bucket back to zero."""
        with self._lock:
            self._metrics = _Metrics()

    # -- reading back (tests, benchmarks) --------------------------------------------------

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample's current value, 0 when absent (e.g. ``http_requests_total``)."""
        with self._lock:
            found = self._metrics.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found

    @property
    def requests(self) -> int:
        return round(
            self.value("http_requests_total", {"code": "200"})
            + self.value("http_requests_total", {"code": "500"})
        )

    @property
    def errors(self) -> int:
        return round(self.value("http_requests_total", {"code": "500"}))

    def cost_per_request(self, prices: Prices = DEFAULT_PRICES) -> float | None:
        """Mean cost of the requests recorded since the last reset; None before any."""
        if self.requests == 0:
            return None
        spent = prices.cost(
            self.value("llm_input_tokens_total"), self.value("llm_output_tokens_total")
        )
        return spent / self.requests

    def samples(self) -> dict[str, float]:
        """Every sample but the ``_created`` timestamps, keyed ``name{label="value",...}``."""
        out: dict[str, float] = {}
        with self._lock:
            families = list(self._metrics.registry.collect())
        for family in families:
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out
