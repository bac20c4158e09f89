"""The real operator as a separate process (``kopf run``), for tests that kill and restart it."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from tollgate.testing.cluster import free_port


class OperatorProcess:
    """``kopf run -m tollgate.runtime.handlers`` against a kubeconfig, output to a log file."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        namespace: str = "default",
        env: dict[str, str] | None = None,
        peering: str | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.namespace = namespace
        self.env = env or {}
        self.peering = peering
        self.metrics_port = free_port()  # the operator's /metrics
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        """Standalone ``kopf run``; with ``peering``, ``tollgate run`` as the image runs it
        (one of several replicas, with its probe endpoint on a free port)."""
        if self.peering is not None:
            return [sys.executable, "-m", "tollgate.cli.main", "run", "--namespace",
                    self.namespace, "--peering", self.peering,
                    f"--probes=127.0.0.1:{free_port()}",
                    f"--metrics=127.0.0.1:{self.metrics_port}"]  # fmt: skip
        return [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace",
                self.namespace, "-m", "tollgate.runtime.handlers"]  # fmt: skip

    def start(self) -> "OperatorProcess":
        metrics = {"TOLLGATE_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}"}
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **metrics, **self.env}
        command = self.command()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer, exactly like a node dying."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def __enter__(self) -> "OperatorProcess":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
