"""A real Kubernetes control plane on 127.0.0.1, run from the binaries ``make tools`` builds.

The in-memory API server (:mod:`tollgate.testing.kubeapi`) cannot show what only a real one
does: admission, RBAC, structural CRD schemas with their CEL rules and defaults, controllers
turning Deployments into ready Pods. This module runs etcd, kube-apiserver (default admission
plugins plus NodeRestriction, ``Node,RBAC`` authorization, service-account tokens),
kube-controller-manager, kube-scheduler and kwok, which plays the kubelet of fake Nodes so Pods
become Running and Ready. It installs the Gateway API standard-channel CRDs straight from the Go
module cache and writes a self-contained admin kubeconfig to ``.tools/cluster/kubeconfig``.

Every process runs in a session of its own and is recorded in a pid file, so the next start and
``down`` stop whatever a previous owner left behind. An owning Python process (a test session)
also starts a watchdog that stops the cluster once the owner's pipe closes, which happens even
when the owner is killed with SIGKILL. ``python -m tollgate.testing.cluster up`` detaches
instead: the cluster outlives the command until ``python -m tollgate.testing.cluster down``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

COMPONENTS: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)
# Stopped group by group, dependents first, so nothing outlives what it talks to.
STOP_ORDER: tuple[tuple[str, ...], ...] = (
    ("kwok", "kube-scheduler", "kube-controller-manager"),
    ("kube-apiserver",),
    ("etcd",),
)
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
PIDFILE = "pids.json"
# The kwok stages kwokctl installs by default, read from the kwok module as kwokctl embeds them.
KWOK_STAGES: tuple[str, ...] = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
GATEWAY_API_CRDS = "config/crd/standard"
_ADMISSION = "/apis/admissionregistration.k8s.io/v1"
APPLIED_KINDS: dict[str, str] = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "ValidatingAdmissionPolicy": f"{_ADMISSION}/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": f"{_ADMISSION}/validatingadmissionpolicybindings",
}
# libyaml parses the 1.2 MB of Gateway API CRDs in 0.1 s, pure Python in 1.4 s.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FIELD_MANAGER = "tollgate-local-cluster"


class ToolsNotBuiltError(RuntimeError):
    """The binaries are missing from .tools/bin (run ``make tools``)."""


class ClusterError(RuntimeError):
    """A component failed to start or to become ready."""


def repo_root() -> Path:
    """The repository root: ``TOLLGATE_ROOT``, else this checkout, else the working directory."""
    configured = os.environ.get("TOLLGATE_ROOT")
    if configured:
        return Path(configured).resolve()
    here = Path(__file__).resolve().parents[3]
    if (here / "e2e" / "tools" / "go.mod").is_file():
        return here
    return Path.cwd()


def kubectl() -> str:
    """The kubectl that ``make tools`` built for the pinned Kubernetes, else the one on PATH."""
    built = repo_root() / ".tools" / "bin" / "kubectl"
    return str(built) if built.is_file() else "kubectl"


def has_kubectl() -> bool:
    return Path(kubectl()).is_file() or shutil.which("kubectl") is not None


def install_tollgate(access: ClusterAccess) -> None:
    """Tollgate's CRDs as README installs them (``kubectl apply``, server-side), and kopf's
    peering ones (for more than one replica), established."""
    crds = repo_root() / "crds"
    for args in (
        ("apply", "--server-side", "--force-conflicts", "-f", str(crds),
         "-f", str(crds / "peering")),
        ("wait", "--for=condition=Established", "--timeout=60s",
         "crd/canaries.tollgate.dev", "crd/promptreleases.tollgate.dev",
         "crd/kopfpeerings.kopf.dev", "crd/clusterkopfpeerings.kopf.dev"),
    ):  # fmt: skip
        done = access.kubectl(*args)
        if done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:2])}: {done.stderr.strip()}")


# the Prometheus operator's CRDs (ServiceMonitor), read from its pinned module like the Gateway
# API's; not built, only downloaded into the module cache
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


def prometheus_operator_crd(name: str) -> Path:
    """The pinned Prometheus operator's CRD file ``name`` (monitoring.coreos.com_<plural>)."""
    if shutil.which("go") is None:
        raise ToolsNotBuiltError("go is not on PATH: the Prometheus operator's CRDs come from it")
    done = subprocess.run(
        ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise ToolsNotBuiltError(f"{PROMETHEUS_OPERATOR}: {done.stdout[-300:]}{done.stderr[-300:]}")
    return Path(json.loads(done.stdout)["Dir"]) / "example" / "prometheus-operator-crd" / name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class ClusterAccess:
    """How to reach a cluster: its kubeconfig, and the parts an HTTP client needs."""

    kubeconfig: Path
    server: str
    ca_file: Path | None
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, workdir: Path) -> ClusterAccess:
        """Read the current context of ``path``; embedded credentials are written to ``workdir``."""
        config = yaml.safe_load(path.read_text())
        context_name = config["current-context"]
        context = _named(config, "contexts", context_name)["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context["user"])["user"] if context.get("user") else {}
        workdir.mkdir(parents=True, exist_ok=True)

        def material(key: str, filename: str, section: dict[str, Any]) -> Path | None:
            if f"{key}-data" in section:
                target = workdir / filename
                target.write_bytes(base64.b64decode(section[f"{key}-data"]))
                target.chmod(0o600)
                return target
            if key in section:
                return (path.parent / str(section[key])).resolve()
            return None

        return cls(
            kubeconfig=path.resolve(),
            server=cluster["server"],
            ca_file=material("certificate-authority", "ca.crt", cluster),
            cert_file=material("client-certificate", "client.crt", user),
            key_file=material("client-key", "client.key", user),
            token=user.get("token"),
        )

    def ssl_context(self, *, client_certificate: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if client_certificate and self.cert_file and self.key_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def client(self, token: str | None = None, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client as the kubeconfig's user, or as the bearer of ``token`` alone.

        With a token the client certificate is left out: the API server tries x509 first and
        would otherwise authenticate the request as the admin.
        """
        bearer = token or self.token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.Client(
            base_url=self.server,
            verify=self.ssl_context(client_certificate=token is None),
            headers=headers,
            timeout=timeout,
        )

    def env(self) -> dict[str, str]:
        """The environment for a tool that reads ``KUBECONFIG`` (kubectl, helm, kopf)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (never checked: callers assert on the result)."""
        return subprocess.run(
            [kubectl(), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return dict(entry)
    raise ClusterError(f"kubeconfig has no {section[:-1]} named {name!r}")


def kubeconfig_document(
    server: str, user: str, ca: Path, cert: Path, key: Path, *, embed: bool
) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context; ``embed`` inlines the PEM files."""

    def field(name: str, path: Path) -> dict[str, str]:
        if embed:
            return {f"{name}-data": base64.b64encode(path.read_bytes()).decode()}
        return {name: str(path)}

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tollgate-local",
                "cluster": {"server": server, **field("certificate-authority", ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {**field("client-certificate", cert), **field("client-key", key)},
            }
        ],
        "contexts": [
            {"name": "tollgate-local", "context": {"cluster": "tollgate-local", "user": user}}
        ],
        "current-context": "tollgate-local",
    }


def _proc_exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """Running and not a zombie (a detached child's zombie is no longer ours to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _terminate(pids: Sequence[int], grace: float) -> None:
    """SIGTERM each process group, then SIGKILL what still runs after ``grace`` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def read_pidfile(state: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads((state / PIDFILE).read_text())
    except (OSError, ValueError):
        return {}
    return record


def stop_recorded(state: Path, grace: float = 10.0) -> list[str]:
    """Stop the processes the pid file in ``state`` names, when they still run our binaries.

    A pid is only signalled while ``/proc/PID/exe`` is the binary recorded for it, so a pid
    reused by an unrelated process since is left alone. Returns the names stopped.
    """
    record = read_pidfile(state)
    running = {
        entry["name"]: int(entry["pid"])
        for entry in record.get("processes", [])
        if _alive(int(entry["pid"])) and _proc_exe(int(entry["pid"])) == entry["exe"]
    }
    for group in STOP_ORDER:
        _terminate([running[name] for name in group if name in running], grace)
    (state / PIDFILE).unlink(missing_ok=True)
    return sorted(running)


@dataclasses.dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    exe: str


class LocalCluster:
    """etcd, the control plane and kwok on loopback ports, with state under ``.tools/cluster``.

    ``with LocalCluster() as access:`` starts it and stops it (and removes its state) on exit.
    ``detach=True`` leaves the processes running when this Python process ends (no watchdog).
    Two clusters with different ``state`` directories run side by side (all ports are free
    ones); starting one stops whatever an earlier owner of the same ``state`` left running.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        state: Path | None = None,
        nodes: int = 2,
        detach: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root or repo_root()
        self.bin = self.root / ".tools" / "bin"
        self.state = state or self.root / ".tools" / "cluster"
        self.logs = self.state / "logs"
        self.pki = self.state / "pki"
        self.kubeconfig = self.state / "kubeconfig"
        self.nodes = nodes
        self.detach = detach
        self._progress = progress or (lambda _message: None)
        self._children: list[_Child] = []
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_pipe: int | None = None
        self._admin: httpx.Client | None = None
        self.access: ClusterAccess | None = None
        self.crd_names: list[str] = []
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- lifecycle

    def missing_tools(self) -> list[str]:
        return [name for name in COMPONENTS if not os.access(self.bin / name, os.X_OK)]

    def start(self, timeout: float = 120.0) -> ClusterAccess:
        """Start every component and wait until the cluster can run workloads."""
        missing = self.missing_tools()
        if missing:
            raise ToolsNotBuiltError(
                f"{', '.join(missing)} not built in {self.bin}: run `make tools` first"
            )
        if shutil.which("openssl") is None:
            raise ToolsNotBuiltError("openssl is not on PATH (apt-get install openssl)")
        began = time.monotonic()
        left_over = stop_recorded(self.state)
        if left_over:
            self._progress(f"stopped a previous cluster's {', '.join(left_over)}")
        shutil.rmtree(self.state, ignore_errors=True)
        self.logs.mkdir(parents=True)
        try:
            self._start(began + timeout)
        except BaseException:
            self.stop(remove_state=False)
            raise
        self.timings["total"] = time.monotonic() - began
        assert self.access is not None
        return self.access

    def stop(self, *, remove_state: bool = True) -> None:
        """Stop the processes this object started (and any recorded ones), then the watchdog."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        by_name = {child.name: child for child in self._children}
        for group in STOP_ORDER:
            _terminate([by_name[name].process.pid for name in group if name in by_name], grace=10.0)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
        self._children.clear()
        stop_recorded(self.state)
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self._watchdog is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)
            self._watchdog = None
        if remove_state:
            shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> ClusterAccess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- start-up steps

    def _start(self, deadline: float) -> None:
        with self._step("module cache"):
            modules = self._module_dirs()
        ports = {
            name: free_port()
            for name in (
                "etcd",
                "etcd-peer",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            )
        }
        server = f"https://127.0.0.1:{ports['kube-apiserver']}"
        with self._step("certificates"):
            self._make_pki()
            self._write_kubeconfigs(server)
        if not self.detach:
            self._start_watchdog()

        with self._step("etcd"):
            etcd = f"http://127.0.0.1:{ports['etcd']}"
            peer = f"http://127.0.0.1:{ports['etcd-peer']}"
            self._spawn(
                "etcd",
                "--name=tollgate",
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls={etcd}",
                f"--advertise-client-urls={etcd}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=tollgate={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            )
            with httpx.Client(timeout=2) as plain:
                self._wait(
                    "etcd", deadline, lambda: plain.get(f"{etcd}/health").json()["health"] == "true"
                )

        with self._step("kube-apiserver"):
            self._spawn("kube-apiserver", *self._apiserver_args(ports, etcd))
            self.access = ClusterAccess.from_kubeconfig(self.kubeconfig, self.pki / "access")
            self._admin = self.access.client(timeout=5)
            admin = self._admin
            self._wait("kube-apiserver", deadline, lambda: admin.get("/readyz").text == "ok")

        with self._step("controller-manager, scheduler, kwok, Nodes"):
            self._spawn("kube-controller-manager", *self._controller_manager_args(ports))
            self._spawn("kube-scheduler", *self._scheduler_args(ports))
            self._spawn(
                "kwok",
                f"--kubeconfig={self.state / 'kwok.kubeconfig'}",
                *(f"--config={modules['sigs.k8s.io/kwok'] / stage}" for stage in KWOK_STAGES),
                "--manage-all-nodes=true",
                f"--cidr={POD_CIDR}",
                "--node-lease-duration-seconds=40",
                env={**os.environ, "HOME": str(self.state / "kwok-home")},
            )
            self._create_nodes()
        with self._step("Gateway API CRDs"):
            self._install_crds(modules["sigs.k8s.io/gateway-api"] / GATEWAY_API_CRDS)

        with self._step("ready"):
            self._wait("nodes Ready", deadline, self._nodes_ready)
            self._wait("the default ServiceAccount", deadline, self._default_service_account)
            self._wait("Gateway API CRDs Established", deadline, self._crds_established)

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - began
        self._progress(f"{name}: {self.timings[name]:.1f} s")

    def _module_dirs(self) -> dict[str, Path]:
        """Where the Go module cache holds the pinned kwok and Gateway API modules."""
        if shutil.which("go") is None:
            raise ToolsNotBuiltError(
                "go is not on PATH: the CRDs and kwok stages come from its module cache"
            )
        wanted = ("sigs.k8s.io/gateway-api", "sigs.k8s.io/kwok")
        listed = subprocess.run(
            ["go", "list", "-m", "-f", "{{.Path}} {{.Dir}}", *wanted],
            cwd=self.root / "e2e" / "tools",
            capture_output=True,
            text=True,
            check=False,
        )
        dirs = dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
        missing = [name for name in wanted if not dirs.get(name)]
        if listed.returncode != 0 or missing:
            raise ToolsNotBuiltError(
                f"{', '.join(missing) or 'modules'} not in the Go module cache (run `make tools`): "
                + listed.stderr.strip()[-300:]
            )
        return {name: Path(dirs[name]) for name in wanted}

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=self.pki, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ClusterError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    def _make_pki(self) -> None:
        """A CA, the serving certificate, one client certificate per identity, the SA keys."""
        self.pki.mkdir(parents=True)
        # Without a config of our own, `req -x509` would add the CA extensions to every leaf.
        (self.pki / "openssl.cnf").write_text("[req]\ndistinguished_name = dn\n[dn]\n")
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc", "-days", "30")
        common = ("req", "-x509", "-new", "-config", "openssl.cnf", *ec)
        self._openssl(
            *common,
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=tollgate-local-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip
        leaf = (*common, "-CA", "ca.crt", "-CAkey", "ca.key",
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature,keyEncipherment")  # fmt: skip
        names = ",".join(
            [
                "IP:127.0.0.1",
                f"IP:{SERVICE_IP}",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ]
        )
        self._openssl(
            *leaf, "-keyout", "apiserver.key", "-out", "apiserver.crt",
            "-subj", "/CN=kube-apiserver",
            "-addext", "extendedKeyUsage=serverAuth", "-addext", f"subjectAltName={names}",
        )  # fmt: skip
        for name, subject in self._identities().items():
            self._openssl(
                *leaf, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", subject,
                "-addext", "extendedKeyUsage=clientAuth",
            )  # fmt: skip
        self._openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"
        )
        self._openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    @staticmethod
    def _identities() -> dict[str, str]:
        """Client certificates: the bootstrap RBAC policy knows the two control-plane users."""
        return {
            "admin": "/O=system:masters/CN=tollgate-admin",
            "kwok": "/O=system:masters/CN=kwok",
            "kube-controller-manager": "/CN=system:kube-controller-manager",
            "kube-scheduler": "/CN=system:kube-scheduler",
            "front-proxy-client": "/CN=front-proxy-client",
        }

    def _write_kubeconfigs(self, server: str) -> None:
        ca = self.pki / "ca.crt"
        for name in ("admin", "kwok", "kube-controller-manager", "kube-scheduler"):
            document = kubeconfig_document(
                server,
                name,
                ca,
                self.pki / f"{name}.crt",
                self.pki / f"{name}.key",
                embed=name == "admin",
            )
            target = self.kubeconfig if name == "admin" else self.state / f"{name}.kubeconfig"
            target.write_text(yaml.safe_dump(document, sort_keys=False))
            target.chmod(0o600)

    def _apiserver_args(self, ports: dict[str, int], etcd: str) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['kube-apiserver']}",
            f"--cert-dir={self.state / 'kube-apiserver'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Nothing listens on a Service IP here, and Endpoints may not name loopback.
            "--endpoint-reconciler-type=none",
            # The front-proxy CA fills extension-apiserver-authentication, which the
            # controller manager and scheduler read to authenticate their own clients.
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _controller_manager_args(self, ports: dict[str, int]) -> list[str]:
        kubeconfig = self.state / "kube-controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kube-controller-manager']}",
            f"--cert-dir={self.state / 'kube-controller-manager'}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={self.pki / 'ca.crt'}",
            f"--cluster-signing-key-file={self.pki / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _scheduler_args(self, ports: dict[str, int]) -> list[str]:
        kubeconfig = self.state / "kube-scheduler.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kube-scheduler']}",
            f"--cert-dir={self.state / 'kube-scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        exe = str((self.bin / name).resolve())
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [exe, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state,
                env=env,
                start_new_session=True,
            )
        self._children.append(_Child(name, process, exe))
        self._write_pidfile()

    def _write_pidfile(self) -> None:
        record = {
            "owner": None if self.detach else os.getpid(),
            "server": self.access.server if self.access else None,
            "kubeconfig": str(self.kubeconfig),
            "processes": [
                {"name": child.name, "pid": child.process.pid, "exe": child.exe}
                for child in self._children
            ],
        }
        temporary = self.state / f"{PIDFILE}.tmp"
        temporary.write_text(json.dumps(record, indent=2))
        temporary.replace(self.state / PIDFILE)

    def _start_watchdog(self) -> None:
        """A process that outlives us and stops the cluster once our end of its pipe closes."""
        read_end, write_end = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])
        pythonpath = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        with (self.logs / "watchdog.log").open("wb") as log:
            self._watchdog = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tollgate.testing.cluster",
                    "watchdog",
                    "--state",
                    str(self.state),
                ],
                stdin=read_end,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": pythonpath},
                start_new_session=True,
            )
        os.close(read_end)
        self._watchdog_pipe = write_end

    def _wait(self, what: str, deadline: float, probe: Callable[[], bool]) -> None:
        last_error = ""
        while True:
            for child in self._children:
                if child.process.poll() is not None:
                    code = child.process.returncode
                    raise ClusterError(
                        f"{child.name} exited with {code} while waiting for {what}:\n"
                        + self.log_tail(child.name)
                    )
            try:
                if probe():
                    return
            except (httpx.HTTPError, ValueError, KeyError) as error:
                last_error = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                reason = last_error or "not ready"
                raise ClusterError(f"timed out waiting for {what} ({reason}); logs in {self.logs}")
            time.sleep(0.1)

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join(
                (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return "(no log)"

    def _api(self) -> httpx.Client:
        assert self._admin is not None
        return self._admin

    def _create_nodes(self) -> None:
        for index in range(self.nodes):
            name = f"kwok-node-{index}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "node.alpha.kubernetes.io/ttl": "0",
                        "kwok.x-k8s.io/node": "fake",
                    },
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                },
            }
            response = self._api().post("/api/v1/nodes", json=node)
            if response.status_code != 201:
                raise ClusterError(f"creating Node {name}: {response.status_code} {response.text}")

    def _install_crds(self, directory: Path) -> None:
        """Server-side apply of what the module's standard channel holds, as kubectl would.

        That is the CRDs and the ValidatingAdmissionPolicy guarding them against a downgrade.
        """
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise ClusterError(f"no CRDs in {directory}")
        for path in files:
            for document in yaml.load_all(path.read_text(), Loader=YAML_LOADER):
                if not document:
                    continue
                kind, name = document["kind"], document["metadata"]["name"]
                if kind not in APPLIED_KINDS:
                    raise ClusterError(f"{path.name}: no API path known for {kind}")
                response = self._api().patch(
                    f"{APPLIED_KINDS[kind]}/{name}",
                    params={"fieldManager": FIELD_MANAGER, "force": "true"},
                    content=json.dumps(document),
                    headers={"Content-Type": "application/apply-patch+yaml"},
                )
                if response.status_code not in (200, 201):
                    raise ClusterError(
                        f"applying {kind} {name}: {response.status_code} {response.text}"
                    )
                if kind == "CustomResourceDefinition":
                    self.crd_names.append(name)

    def _nodes_ready(self) -> bool:
        items = self._api().get("/api/v1/nodes").json()["items"]
        ready = [
            node
            for node in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.nodes

    def _default_service_account(self) -> bool:
        return (
            self._api().get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200
        )

    def _crds_established(self) -> bool:
        items = (
            self._api()
            .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .json()["items"]
        )
        established = {
            crd["metadata"]["name"]
            for crd in items
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions", [])
            )
        }
        return set(self.crd_names) <= established


def status(root: Path | None = None) -> dict[str, Any]:
    """What runs of the cluster recorded under ``root``, and whether its API server is ready."""
    state = (root or repo_root()) / ".tools" / "cluster"
    record = read_pidfile(state)
    processes = {
        entry["name"]: _alive(int(entry["pid"])) and _proc_exe(int(entry["pid"])) == entry["exe"]
        for entry in record.get("processes", [])
    }
    report: dict[str, Any] = {"state": str(state), "processes": processes, "ready": False}
    kubeconfig = state / "kubeconfig"
    if processes and kubeconfig.is_file():
        access = ClusterAccess.from_kubeconfig(kubeconfig, state / "pki" / "access")
        report["server"] = access.server
        report["kubeconfig"] = str(kubeconfig)
        with contextlib.suppress(httpx.HTTPError), access.client(timeout=2) as client:
            report["ready"] = client.get("/readyz").text == "ok"
            report["version"] = client.get("/version").json().get("gitVersion")
    return report


def _watchdog(state: Path) -> None:
    """Block until the owner's pipe closes (it exited or was killed), then stop the cluster."""
    sys.stdin.buffer.read()
    stopped = stop_recorded(state)
    if stopped:
        print(f"owner gone: stopped {', '.join(stopped)}", flush=True)  # noqa: T201


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.testing.cluster", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster and leave it running")
    up.add_argument("--nodes", type=int, default=2, help="fake kwok Nodes (default 2)")
    up.add_argument("--timeout", type=float, default=120.0)
    commands.add_parser("down", help="stop the cluster and remove its state")
    commands.add_parser("status", help="show what runs")
    commands.add_parser(
        "gateway-api-crds", help="print the pinned Gateway API standard-channel CRD directory"
    )
    watchdog = commands.add_parser("watchdog")
    watchdog.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"cluster: {message}", flush=True)  # noqa: T201

    if args.command == "watchdog":
        _watchdog(args.state)
        return 0
    if args.command == "down":
        root = repo_root()
        stopped = stop_recorded(root / ".tools" / "cluster")
        shutil.rmtree(root / ".tools" / "cluster", ignore_errors=True)
        say(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
        return 0
    if args.command == "gateway-api-crds":
        try:
            module = LocalCluster()._module_dirs()["sigs.k8s.io/gateway-api"]
        except ToolsNotBuiltError as error:
            say(f"error: {error}")
            return 1
        print(module / "config" / "crd" / "standard")  # noqa: T201
        return 0
    if args.command == "status":
        report = status()
        print(json.dumps(report, indent=2))  # noqa: T201
        return 0 if report["ready"] else 1
    cluster = LocalCluster(nodes=args.nodes, detach=True, progress=say)
    try:
        access = cluster.start(timeout=args.timeout)
    except (ToolsNotBuiltError, ClusterError) as error:
        say(f"error: {error}")
        return 1
    say(f"ready in {cluster.timings['total']:.1f} s at {access.server}; logs in {cluster.logs}")
    say("stop it with `make cluster-down`")
    print(f"export KUBECONFIG={access.kubeconfig}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
