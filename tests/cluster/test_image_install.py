"""What the Dockerfile's install steps produce runs the operator, the way the image runs it.

No container engine runs here, so the test repeats the image's steps on the host: a venv with
`pip install --require-hashes -r requirements-operator.lock`, then the project without its
dependencies, then `tollgate run` as the image's numeric user (65532, with setpriv), with
PYTHONDONTWRITEBYTECODE and HOME=/tmp as the image sets them, so nothing under the install
can be written (the image's root filesystem is read-only). The operator must answer its
liveness probe and adopt a Canary on the real cluster.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.world import FAST, ON_A_CLUSTER
from tollgate.api.status import Phase, RolloutStatus
from tollgate.testing.cluster import ClusterAccess, free_port, repo_root
from tollgate.testing.clusterapi import ClusterApi
from tollgate.testing.scenario import CANARIES, DEPLOYMENTS, ROUTES, canary, deployment, http_route

pytestmark = [
    *ON_A_CLUSTER,
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
]
IMAGE_USER = "65532"


def image_steps() -> list[str]:
    """The pip commands of the Dockerfile's build stage, as written there."""
    text = (repo_root() / "Dockerfile").read_text()
    return re.findall(r"^RUN (/opt/tollgate/bin/pip install [^\\\n]+)", text, flags=re.M)


def system_python() -> str:
    """A Python 3.11+ outside any home directory, as the image's base has one: the image user
    must be able to run it (a pyenv interpreter under /root is out of its reach)."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        if os.access(candidate, os.X_OK):
            version = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()  # fmt: skip
            if version == "True":
                return candidate
    pytest.skip("no system Python 3.11+ (/usr/bin/python3) for the image user to run")


@pytest.fixture(scope="module")
def installed_like_the_image() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tollgate-image-"))
    root.chmod(0o755)
    venv = root / "opt" / "tollgate"
    subprocess.run([system_python(), "-m", "venv", str(venv)], check=True)
    src = repo_root()
    for step in image_steps():
        command = step.replace("/opt/tollgate", str(venv)).split()
        done = subprocess.run(command, cwd=src, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    yield venv
    shutil.rmtree(root, ignore_errors=True)


def uid_of(pid: int) -> str:
    """The real uid of a process (setpriv execs the operator in place, so its pid stays)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return line.split()[1]
    return ""


def test_the_image_installs_only_the_runtime_pins(installed_like_the_image: Path) -> None:
    listed = subprocess.run(
        [str(installed_like_the_image / "bin" / "pip"), "list", "--format=freeze"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert {"kopf", "kubernetes", "pydantic", "httpx", "tollgate"} <= names
    assert not names & {"pytest", "mypy", "ruff", "hypothesis", "kmock"}


def test_the_installed_operator_runs_as_the_image_user_and_adopts_a_canary(
    installed_like_the_image: Path, tollgate_cluster: ClusterAccess
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tollgate-image-run-"))
    workdir.chmod(0o755)
    kubeconfig = workdir / "kubeconfig"
    shutil.copy(tollgate_cluster.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)
    port = free_port()
    with ClusterApi(tollgate_cluster) as api:
        ns = f"image-{os.getpid()}"
        api.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
        api.create(DEPLOYMENTS, deployment("app", "app:1", namespace=ns))
        api.create(ROUTES, http_route("app", namespace=ns))
        api.create(CANARIES, canary("app", FAST, namespace=ns))
        env = {
            "PATH": f"{installed_like_the_image / 'bin'}:/usr/bin:/bin",
            "KUBECONFIG": str(kubeconfig),
            "HOME": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TOLLGATE_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        }
        command = [
            "setpriv", f"--reuid={IMAGE_USER}", f"--regid={IMAGE_USER}", "--clear-groups",
            str(installed_like_the_image / "bin" / "tollgate"), "run",
            f"--namespace={ns}", f"--probes=127.0.0.1:{port}",
        ]  # fmt: skip
        log = (workdir / "operator.log").open("wb")
        process = subprocess.Popen(command, env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            alive = adopted = False
            while time.monotonic() < deadline and not (alive and adopted):
                try:
                    alive = (
                        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                    )
                except httpx.HTTPError:
                    alive = False
                found = api.get(CANARIES, ns, "app") or {}
                adopted = (
                    RolloutStatus.model_validate(found.get("status") or {}).phase is Phase.SUCCEEDED
                )
                assert process.poll() is None, (workdir / "operator.log").read_text()[-3000:]
                time.sleep(0.5)
            assert alive, "no answer on the liveness endpoint"
            assert uid_of(process.pid) == IMAGE_USER
            assert adopted, (workdir / "operator.log").read_text()[-3000:]
            api.delete(CANARIES, ns, "app")
            deadline = time.monotonic() + 30
            while api.get(CANARIES, ns, "app") and time.monotonic() < deadline:
                time.sleep(0.3)
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.close()
            api.delete("namespaces", None, ns)
            shutil.rmtree(workdir, ignore_errors=True)
