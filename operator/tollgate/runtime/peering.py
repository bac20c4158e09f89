"""More than one replica, one of them acting: kopf peering, made safe to run as a Deployment.

kopf's peering pauses every replica that sees a live peer of higher priority, and all of them
when two share the top priority. Replicas of one Deployment start with the same flags, so the
priority is chosen here: the longest-running replica wins (a new pod of a rolling update
never takes over from one mid-tick; it waits until the old one is gone), and random low bits
break the tie of pods started in the same millisecond. A replica killed without a word is
believed alive for ``lifetime`` seconds after its last keep-alive: that bounds the failover.

The peering object must exist before kopf looks for it, or every replica waits forever:
each replica creates it at startup (a 409 means another one did).
"""

import logging
import random
import time

from tollgate.adapters.kube.client import ConflictError, KubeClient, KubeError
from tollgate.adapters.kube.resources import CLUSTER_KOPF_PEERINGS, KOPF_PEERINGS

log = logging.getLogger("tollgate.peering")

DEFAULT_LIFETIME = 15  # seconds; kopf keeps its record alive every 5-10 s below this
MIN_LIFETIME = 11  # kopf's keep-alive comes up to 10 s before expiry: less would flap
# milliseconds since the epoch fit well below this for centuries; priorities stay positive
EPOCH_CEILING_MS = 1 << 42
TIE_BITS = 10


def seniority_priority(started: float | None = None, rng: random.Random | None = None) -> int:
    """The kopf priority of a replica started at ``started`` (epoch seconds): earlier is
    higher; two replicas started within the same millisecond differ in the low bits."""
    started_ms = int((time.time() if started is None else started) * 1000)
    tie = (rng or random.SystemRandom()).getrandbits(TIE_BITS)
    return ((EPOCH_CEILING_MS - started_ms) << TIE_BITS) | tie


def lifetime_from(raw: str | None) -> int:
    """The keep-alive lifetime asked for (TOLLGATE_PEERING_LIFETIME), at least MIN_LIFETIME."""
    if raw is None or not raw.strip():
        return DEFAULT_LIFETIME
    try:
        asked = int(raw)
    except ValueError:
        log.warning("TOLLGATE_PEERING_LIFETIME=%r is not whole seconds: using %d s",
                    raw, DEFAULT_LIFETIME)  # fmt: skip
        return DEFAULT_LIFETIME
    return max(MIN_LIFETIME, asked)


async def ensure_peering(
    kube: KubeClient, name: str, clusterwide: bool, namespaces: tuple[str, ...]
) -> list[str]:
    """Create the peering object(s) kopf will watch; the ones that could not be, with why."""
    if clusterwide:
        wanted: list[str | None] = [None]
    else:
        wanted = list(namespaces)
    problems = []
    for namespace in wanted:
        resource = CLUSTER_KOPF_PEERINGS if namespace is None else KOPF_PEERINGS
        where = f"{resource.kind} {name}" + (f" in {namespace}" if namespace else "")
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        }
        try:
            await kube.create(resource, namespace, body)
            log.info("created %s", where)
        except ConflictError:
            continue
        except KubeError as exc:  # perhaps not ours to create, but there all the same
            try:
                await kube.get(resource, namespace, name)
            except KubeError:
                problems.append(f"{where}: {exc}")
    if not wanted:
        problems.append("no namespace named: set TOLLGATE_NAMESPACES as --namespace says")
    return problems
