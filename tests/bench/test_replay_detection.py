"""The real-path detection benchmark end to end, small: generator, promtool, Prometheus, replays.

A quick run on one traffic case and two specs must write its JSON with a verdict for every
replay, catch a 5x error regression, and roll back few identical canaries. The generator's
histories are also checked against what they promise (bursty counts, restarts, late series).
"""

import json
import math
import random
from pathlib import Path
from statistics import mean, pvariance

import pytest
from bench.replay_detection.distributions import Behaviour
from bench.replay_detection.history import Slot, Traffic, generate
from bench.replay_detection.openmetrics import OTEL, PROMETHEUS, write
from bench.replay_detection.run import QUICK_REPLAYS, main

TRAFFIC = Traffic("100rps", 100.0, 0.05)


def test_arrivals_are_burstier_than_poisson() -> None:
    counts: list[float] = []
    for seed in range(20):
        h = generate(random.Random(seed), "ns", TRAFFIC, Behaviour(), Behaviour(), "app")
        pod = h.pods[0]  # a stable pod; increments of its first life only
        previous = None
        for reading, life in zip(pod.readings, pod.lives, strict=True):
            if reading is None or life:
                previous = None
                continue
            total = reading[Slot.OK] + reading[Slot.FAILED]
            if previous is not None:
                counts.append(total - previous)
            previous = total
    assert pvariance(counts) > 1.5 * mean(counts)  # a Poisson count has variance = mean
    expected = TRAFFIC.rps * (1 - TRAFFIC.canary_share) / 2 * 15.0  # one of two stable pods
    assert abs(mean(counts) / expected - 1) < 0.15  # bursts average out to the nominal rate


def test_error_series_appear_at_the_first_error_and_restarts_reset(tmp_path: Path) -> None:
    h = generate(random.Random(3), "ns", Traffic("1rps", 1.0, 0.1), Behaviour(), Behaviour(), "app")
    path = tmp_path / "h.om"
    with path.open("w") as out:
        write(out, [h], 1_735_689_600.0, {PROMETHEUS, OTEL})
    text = path.read_text()
    assert text.endswith("# EOF\n")
    canary = next(p for p in h.pods if p.canary)
    failed = [r[Slot.FAILED] for r in canary.readings if r is not None]
    emitted = [
        line
        for line in text.splitlines()
        if f'pod="{canary.name}"' in line and 'code="500"' in line
    ]
    assert len(emitted) == sum(f > 0 for f in failed) < len(failed)
    assert any(
        line.startswith("# TYPE gen_ai_client_token_usage histogram") for line in text.splitlines()
    )
    restarted = [
        p
        for seed in range(40)
        for p in generate(random.Random(seed), "ns", TRAFFIC, Behaviour(), Behaviour(), "app").pods
        if p.lives[-1]
    ]
    assert restarted
    pod = restarted[0]
    k = pod.lives.index(1)
    before = next(r for r in reversed(pod.readings[:k]) if r is not None)
    after = next(r for r in pod.readings[k:] if r is not None)
    assert after[Slot.OK] < before[Slot.OK]


@pytest.mark.integration
def test_a_quick_run_catches_a_5x_error_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    args = ["--quick", "--traffic", "100rps", "--scenarios", "aa,errors_5pct"]
    assert (
        main([*args, "--specs", "defaults,promptrelease", "--workers", "1", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "errors 1% -> 5%" in printed
    doc = json.loads(out.read_text())
    verdicts = doc["verdicts"]
    aa = [v for v in verdicts if v["scenario"] == "aa"]
    bad = [v for v in verdicts if v["scenario"] == "errors_5pct"]
    assert len(aa) == 2 * 2 * QUICK_REPLAYS  # two specs, twice as many A/A replays
    assert len(bad) == 2 * QUICK_REPLAYS
    assert {v["group"] for v in verdicts} <= {"evidence", "deadline", "promoted", "undecided"}
    caught = [v for v in bad if v["group"] == "evidence"]
    assert len(caught) == len(bad), bad
    assert all(any(c.startswith("errorRate") for c in v["causes"]) for v in caught)
    assert sum(v["group"] == "evidence" for v in aa) <= 1
    every = {"defaults": 30.0, "promptrelease": 60.0}  # the specs' count readings
    for v in caught:
        assert v["seconds"] > 0
        assert math.isclose(v["seconds"] % every[v["spec"]], 0.0, abs_tol=1e-6)
    cells = {(c["scenario"], c["spec"]): c["rows"] for c in doc["cells"]}
    whole = cells[("errors_5pct", "defaults")][0]
    assert whole["row"] == "whole analysis"
    assert whole["caught"] == QUICK_REPLAYS
    assert [r["row"] for r in cells[("errors_5pct", "defaults")]][-1] == "oracle"
