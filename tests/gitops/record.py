"""Re-record tests/gitops/objects/ from a live run: ``.venv/bin/python -m tests.gitops.record``.

The checkers' tests read these objects without a cluster, so the verdicts on every state stay
tested where no cluster runs, and a change of what the operator writes shows as a diff of real
objects. This starts a local cluster of its own (``make tools`` first), or uses the one
``TOLLGATE_KUBECONFIG`` names, runs :func:`tests.gitops.capture.capture` (about 30 s) and
writes each object as the API server returned it, less ``metadata.managedFields``.
"""

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster_fixture import REUSE_ENV
from tests.gitops.capture import Recording, capture
from tollgate.testing.cluster import ClusterAccess, LocalCluster, install_tollgate, repo_root

OBJECTS = Path(__file__).resolve().parent / "objects"


def stored(obj: dict[str, Any]) -> str:
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return json.dumps({**obj, "metadata": meta}, indent=2) + "\n"


def record(access: ClusterAccess, workdir: Path) -> Recording:
    install_tollgate(access)
    return asyncio.run(capture(access, workdir))


def main() -> int:
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        workdir, configured = Path(tmp), os.environ.get(REUSE_ENV)
        if configured:
            recording = record(ClusterAccess.from_kubeconfig(Path(configured), workdir), workdir)
        else:
            root = repo_root()
            with LocalCluster(root, state=root / ".tools" / "gitops-record-cluster") as access:
                recording = record(access, workdir)
    files = {f"{name}.json": obj for name, obj in recording.objects.items()}
    files.update({f"httproute-{when}.json": obj for when, obj in recording.routes.items()})
    OBJECTS.mkdir(exist_ok=True)
    for old in OBJECTS.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, obj in sorted(files.items()):
        (OBJECTS / name).write_text(stored(obj))
    print(f"recorded {len(files)} objects in {time.monotonic() - began:.0f} s: {sorted(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
