"""What the runtime saw this tick, in plain values: the engine's only view of the world."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tollgate.api.intents import Intent
from tollgate.engine.sequential import Amount, Batch


class GateState(StrEnum):
    """A webhook gate's answer this tick."""

    OPEN = "Open"
    CLOSED = "Closed"
    ERROR = "Error"


class RequirementState(StrEnum):
    """Where the code a prompt version needs stands."""

    MET = "Met"  # the required code revision is stable
    WAITING = "Waiting"  # not released yet, or still being rolled out
    FAILED = "Failed"  # its rollout was rolled back: it will not come


@dataclass(frozen=True)
class Requirement:
    """The state of a rollout's dependency on another one (a prompt on its code)."""

    state: RequirementState
    message: str = ""


@dataclass(frozen=True)
class MetricReading:
    """One check's values for the canary and the stable version over the analysis window.

    ``error`` is set when the provider failed (timeout, HTTP error, bad query result);
    ``partial`` when it answered with part of the data missing (Prometheus' ``warnings``, as
    Thanos and Cortex return): values are then ignored. ``None`` or NaN values mean no data.
    ``warning`` notes a reading to take with care (a window under four scrapes).
    """

    check: str
    canary: float | None = None
    stable: float | None = None
    canary_samples: int = 0
    stable_samples: int = 0
    query: str | None = None
    error: str | None = None
    partial: str | None = None
    warning: str | None = None


@dataclass(frozen=True)
class Observations:
    """Inputs of one decision besides the spec, the status and the time.

    - ``revision``: the candidate's current revision (pod-template hash, or prompt version);
      None when the target cannot be found.
    - ``stable_revision``: what the stable track runs now; None until it exists.
    - ``target_ready``: the candidate's pods can take traffic; ``target_message`` says why
      not, when the runtime knows (a missing template, an unreadable Deployment).
    - ``target_gone``: the target was read and does not exist (deleted), as opposed to
      unreadable this tick: a rollout in flight cannot go on without it.
    - ``weight``: the canary weight read back from the router; None when unknown.
    - ``metrics``: readings of this tick's analysis; None when none was taken.
    - ``gates``: answers of the webhook gates asked this tick.
    - ``intent``: the pending user request, if any.
    - ``requirement``: the code this rollout needs (PromptRelease); None when it needs none.
    - ``counts``: per check, the requests and bad events of both versions since the previous
      reading (counter increments through resets), for the sequential tests and the burn
      rate; ``objectives``: the latency, TTFT and token bounds those counts were taken
      against (a relative test's stable bound under ``stable_key(test)``); ``amounts``: per
      mean test, both versions' requests and what they cost since the previous reading;
      ``untestable``: tests the metrics cannot count (no bucket bound for the limit, or none
      that tells the stable's requests apart), with why: their limits are judged on the
      window; ``count_queries``: the PromQL each check's counts were read with.
    """

    revision: str | None
    stable_revision: str | None = None
    target_ready: bool = True
    target_message: str | None = None
    target_gone: bool = False
    weight: int | None = None
    metrics: tuple[MetricReading, ...] | None = None
    gates: Mapping[str, GateState] = field(default_factory=dict)
    intent: Intent | None = None
    requirement: Requirement | None = None
    counts: Mapping[str, Batch] = field(default_factory=dict)
    objectives: Mapping[str, float] = field(default_factory=dict)
    amounts: Mapping[str, Amount] = field(default_factory=dict)
    untestable: Mapping[str, str] = field(default_factory=dict)
    count_queries: Mapping[str, str] = field(default_factory=dict)
