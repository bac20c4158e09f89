"""A real Prometheus server for tests, the demo and benchmarks (Debian's package, no mocks).

Two ways to feed it: live scraping of exporters listed in a file_sd targets file (rewritten at
will, picked up within a second), or deterministic history written as OpenMetrics and turned
into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics`` before start. One server
per test session: target discovery takes seconds, start-up 0.1 s.
"""

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml


class PrometheusNotInstalledError(RuntimeError):
    """prometheus/promtool are not on PATH (run `make install`)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> str:
    """Path of a Prometheus binary, or a clear error."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusNotInstalledError(f"{name} not found on PATH; `make install` installs it")
    return path


class PrometheusServer:
    """One Prometheus process on a loopback port with its own data directory."""

    def __init__(
        self,
        scrape_interval: str = "1s",
        workdir: Path | None = None,
        port: int | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tollgate-prom-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.data = self.workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.targets_file = self.workdir / "targets.json"
        self.scrape_interval = scrape_interval
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / "prometheus.log"
        self.set_targets([])
        self._write_config()

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "workloads",
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))

    def set_targets(self, targets: list[tuple[str, dict[str, str]]]) -> None:
        """Scrape these ``(host:port, labels)`` from now on (file_sd, reread every second)."""
        groups = [{"targets": [address], "labels": labels} for address, labels in targets]
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.targets_file)

    def backfill(self, openmetrics: str) -> None:
        """Write history before start: OpenMetrics text into TSDB blocks (promtool)."""
        if self.process is not None:
            raise RuntimeError("backfill before start()")
        text = openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics + "# EOF\n"
        source = self.workdir / "backfill.om"
        source.write_text(text)
        subprocess.run(
            [
                binary("promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data),
            ],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 20.0) -> "PrometheusServer":
        """Start and wait until /-/ready answers."""
        args = [
            binary("prometheus"),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=100y",
            "--web.enable-admin-api",
            "--web.enable-lifecycle",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus not ready in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the data directory stays for a restart."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """An outage: SIGKILL, no shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        """Stop and remove a temporary work directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def with_dead_remote_read(server: "PrometheusServer") -> "PrometheusServer":
    """Configure a not yet started server to read remotely from an endpoint that is down: it
    then answers every query with the data it has and ``warnings``, as Thanos and Cortex do
    when a store is down (a partial answer). Returns the server."""
    import yaml

    config_file = server.workdir / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    dead = f"http://127.0.0.1:{free_port()}/api/v1/read"
    config["remote_read"] = [{"url": dead, "read_recent": True}]
    config_file.write_text(yaml.safe_dump(config))
    return server
