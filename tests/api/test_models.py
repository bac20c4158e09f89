"""The API models: defaults, wire format, round trips and error paths."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tollgate.api.canary import Canary, CanarySpec
from tollgate.api.durations import seconds
from tollgate.api.intents import IntentKind, parse_intent
from tollgate.api.promptrelease import PromptRelease
from tollgate.api.status import Phase, RolloutStatus
from tollgate.api.validation import parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


def test_minimal_canary_gets_documented_defaults() -> None:
    spec = CanarySpec.model_validate(load("canary-minimal.yaml")["spec"])
    a = spec.analysis
    assert (a.interval, a.step_weight, a.max_weight, a.progress_deadline) == ("30s", 5, None, "10m")
    assert (a.failure_limit, a.consecutive_error_limit, a.min_samples) == (1, 4, 50)
    assert spec.router.provider.value == "gatewayapi"
    assert spec.target_ref.kind == "Deployment"
    assert spec.metrics.prometheus.timeout == "5s"


@pytest.mark.parametrize(
    ("name", "model"), [("canary.yaml", Canary), ("promptrelease.yaml", PromptRelease)]
)
def test_examples_round_trip_through_the_wire_format(name: str, model: type[Canary]) -> None:
    doc = load(name)
    obj = model.model_validate(doc)
    wire = obj.spec.to_wire()
    assert model.model_validate({**doc, "spec": wire}).spec == obj.spec
    for key, value in doc["spec"].items():  # what the user wrote comes back under the same key
        assert key in wire, key
        if not isinstance(value, dict | list):
            assert wire[key] == value


def test_status_round_trip_and_tolerance() -> None:
    status = RolloutStatus.model_validate(
        {
            "phase": "Progressing",
            "canaryWeight": 10,
            "currentStep": 2,
            "kopf": {"x": 1},
            "futureField": True,
        }
    )
    assert status.phase is Phase.PROGRESSING
    again = RolloutStatus.model_validate(status.model_dump(by_alias=True, mode="json"))
    assert again == status


def test_parse_reports_paths_in_camel_case() -> None:
    raw = load("canary-minimal.yaml")["spec"]
    raw["analysis"] = {"stepWeight": 0, "interval": "soon"}
    raw["typoField"] = 1
    spec, problems = parse(CanarySpec, raw)
    assert spec is None
    paths = {p.path for p in problems}
    assert {"spec.analysis.stepWeight", "spec.analysis.interval", "spec.typoField"} <= paths


@pytest.mark.parametrize(
    ("text", "value"),
    [("30s", 30.0), ("1m30s", 90.0), ("2h", 7200.0), ("500ms", 0.5), ("1.5m", 90.0)],
)
def test_durations(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["", "10", "10 minutes", "1d", "-1s", "s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        seconds(text)


@pytest.mark.parametrize(
    ("value", "kind", "ident"),
    [
        ("abort@2026-11-22T03:00:00Z", IntentKind.ABORT, "abort@2026-11-22T03:00:00Z"),
        ("Promote@1", IntentKind.PROMOTE, "Promote@1"),
        ("resume", IntentKind.RESUME, "resume@"),
    ],
)
def test_intents(value: str, kind: IntentKind, ident: str) -> None:
    intent = parse_intent(value)
    assert intent is not None
    assert (intent.kind, intent.id) == (kind, ident)


@pytest.mark.parametrize("value", [None, "", "explode@1", "@1"])
def test_unknown_intents_are_ignored(value: str | None) -> None:
    assert parse_intent(value) is None
