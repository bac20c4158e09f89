"""The specs each history is judged by: a Canary with the defaults, and examples/ as shipped.

Each manifest is pointed at the replay's generated workload and otherwise left alone, so the
figures are those of the examples themselves:

- ``metadata.namespace`` becomes the history's namespace (one per replay);
- a Canary's ``targetRef.name`` becomes the generated workload's name (its pods are
  ``<name>-<hash>-<id>`` and ``<name>-primary-<hash>-<id>``);
- ``gates`` and ``notifications`` are dropped: the replay has no webhook to ask and nobody to
  approve a manual gate, which would hold the rollout until the period ends. A PromptRelease's
  ``requires`` stays but plays no part: the replay has no code rollout to wait for.

Metric names and labels are not touched: the generator writes what the specs' presets and
selectors query (:mod:`openmetrics`).
"""

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.replay_detection.openmetrics import OTEL, PROMETHEUS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WORKLOAD = "app"
STRIPPED = ("gates", "notifications")
REPLAY_TIMEOUT = "60s"  # the longest call timeout the API takes

# analysis all defaults; checks as in README's minimal example, plus TTFT and cost in the
# same style so that every scenario has a check of this spec that can see it.
DEFAULTS = {
    "apiVersion": "tollgate.dev/v1alpha1",
    "kind": "Canary",
    "metadata": {"name": WORKLOAD},
    "spec": {
        "targetRef": {"name": WORKLOAD},
        "service": {"port": 8080},
        "router": {"httpRoute": {"name": WORKLOAD}},
        "checks": {
            "latency": {"maxIncreasePercent": 10},
            "ttft": {"maxIncreasePercent": 10},
            "errorRate": {"maxPercent": 1},
            "costPerRequest": {
                "pricing": {"inputPerMillionTokens": 0.15, "outputPerMillionTokens": 0.60},
                "maxIncreasePercent": 20,
            },
        },
    },
}
# Which checks see which regressed signal (a spec without one is not judged on it).
SIGNAL_CHECKS = {
    "latency": ("latency",),
    "ttft": ("ttft",),
    "errors": ("errorRate", "errorBudget"),
    "cost": ("costPerRequest",),
}


@dataclass(frozen=True)
class Manifest:
    """One judged spec: its name in the report, the object, and the naming it reads."""

    name: str
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.document["kind"])

    @property
    def naming(self) -> str:
        """The generated naming the spec's preset reads (the generator writes two)."""
        default = OTEL if self.kind == "PromptRelease" else PROMETHEUS
        preset = (self.document["spec"].get("metrics") or {}).get("preset", default)
        if preset not in (PROMETHEUS, OTEL):
            raise ValueError(f"{self.name}: the generator writes no {preset!r} metrics")
        return str(preset)

    @property
    def checks(self) -> tuple[str, ...]:
        """The spec's checks, built-in ones in a fixed order, then custom ones."""
        checks = self.document["spec"].get("checks") or {}
        names = ("latency", "ttft", "errorRate", "costPerRequest", "errorBudget")
        custom = [c["name"] for c in checks.get("custom") or ()]
        return tuple(n for n in names if n in checks) + tuple(custom)

    def sees(self, signal: str | None) -> bool:
        """Whether one of the spec's checks can see a regression of ``signal`` (None: A/A)."""
        return signal is None or any(c in self.checks for c in SIGNAL_CHECKS[signal])

    def for_history(self, namespace: str) -> dict[str, Any]:
        """The object to replay on one history."""
        doc = copy.deepcopy(self.document)
        doc["metadata"]["namespace"] = namespace
        for key in STRIPPED:
            doc["spec"].pop(key, None)
        if self.kind == "Canary":
            doc["spec"]["targetRef"]["name"] = WORKLOAD
        # a replay reads 30 minutes of history as fast as one Prometheus answers, for every
        # replay of a chunk at once: a timeout meant for one live reading (5s by default) does
        # not apply, and a slow moment of a loaded machine must not read as an outage
        metrics = doc["spec"].setdefault("metrics", {})
        metrics.setdefault("prometheus", {})["timeout"] = REPLAY_TIMEOUT
        return doc


def manifests() -> list[Manifest]:
    """The default spec, then every Canary and PromptRelease in examples/ by file name."""
    found = [Manifest("defaults", DEFAULTS)]
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ("Canary", "PromptRelease"):
                found.append(Manifest(path.stem, doc))
    return found
