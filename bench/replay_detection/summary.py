"""Figures per traffic case, spec and scenario, for the whole analysis and for each check.

- caught: replays rolled back on evidence (the replay's exit status 1), out of all; on A/A
  these are the false rollbacks, with a Wilson 95% upper bound;
- time to rollback: seconds from the canary's first request to the decision, nearest-rank
  median and p90 over all replays, a replay that was not rolled back on evidence counting as
  never (so a median can be "never");
- outcomes: rolled back on evidence / ended at the deadline without evidence (exit 5) /
  promoted / still undecided when the history ends;
- per check: the same, counting a rollback for every check among its causes (a check that
  would have fired later is hidden by the first one);
- oracle: the likelihood-ratio test that knows the true bad shares (:mod:`oracle`), on the
  same counts at the spec's count readings.
"""

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.detection.report import nearest_rank, wilson_upper
from bench.replay_detection.judging import DEADLINE, EVIDENCE, PROMOTED, UNDECIDED, Judgement
from bench.replay_detection.manifests import SIGNAL_CHECKS, Manifest
from bench.replay_detection.oracle import oracle_key
from bench.replay_detection.scenarios import Scenario

NEVER = math.inf
WHOLE = "whole analysis"
ORACLE = "oracle"
GROUP_ORDER = (EVIDENCE, DEADLINE, PROMOTED, UNDECIDED)


@dataclass(frozen=True)
class Row:
    """One line of the table: the whole analysis, one check, or the oracle."""

    what: str
    caught: int
    replays: int
    median_s: float
    p90_s: float
    outcomes: dict[str, int] = field(default_factory=dict)
    by: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.caught / self.replays if self.replays else 0.0

    @property
    def upper(self) -> float:
        return wilson_upper(self.caught, self.replays)

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.what,
            "replays": self.replays,
            "caught": self.caught,
            "caught_share": round(self.share, 4),
            "wilson_upper_95": round(self.upper, 4),
            "median_s": None if math.isinf(self.median_s) else self.median_s,
            "p90_s": None if math.isinf(self.p90_s) else self.p90_s,
            "outcomes": self.outcomes,
            "caused_by": self.by,
        }


def row(what: str, times: Sequence[float], **extra: Any) -> Row:
    caught = sum(not math.isinf(t) for t in times)
    return Row(
        what, caught, len(times), nearest_rank(times, 0.5), nearest_rank(times, 0.9), **extra
    )


def _check(cause: str) -> str:
    return cause.split(":", 1)[0]


def cell_rows(
    verdicts: Sequence[Judgement],
    manifest: Manifest,
    scenario: Scenario,
    oracles: Mapping[tuple[str, str, int], dict[str, float]],
    every: float,
    alpha: float,
) -> list[Row]:
    """The whole analysis, each check the row applies to, and the oracle when there is one."""
    outcomes = Counter(v.group for v in verdicts)
    by = Counter(check for v in verdicts for check in {_check(c) for c in v.causes})
    rows = [
        row(
            WHOLE,
            [
                v.seconds if v.group == EVIDENCE and v.seconds is not None else NEVER
                for v in verdicts
            ],
            outcomes={
                g: outcomes.get(g, 0)
                for g in (*GROUP_ORDER, *sorted(set(outcomes) - set(GROUP_ORDER)))
            },
            by=dict(sorted(by.items())),
        )
    ]
    shown = (
        manifest.checks
        if scenario.signal is None
        else [c for c in manifest.checks if c in SIGNAL_CHECKS[scenario.signal]]
    )
    for check in shown:
        times = [
            v.seconds
            if v.group == EVIDENCE and v.seconds is not None and check in map(_check, v.causes)
            else NEVER
            for v in verdicts
        ]
        rows.append(row(check, times))
    if scenario.oracle:
        times = [oracle_time(v, scenario, oracles, every, alpha) for v in verdicts]
        rows.append(row(ORACLE, times))
    return rows


def oracle_time(
    v: Judgement,
    scenario: Scenario,
    oracles: Mapping[tuple[str, str, int], dict[str, float]],
    every: float,
    alpha: float,
) -> float:
    """The oracle's time on this replay's counts (latency: over the engine's own bound)."""
    times = oracles.get((v.traffic, v.scenario, v.index), {})
    if scenario.signal == "errors":
        return times.get(oracle_key(every, alpha), NEVER)
    bound = v.objectives.get("latency", v.objectives.get("latency.max"))
    if bound is None:
        return NEVER
    return times.get(oracle_key(every, alpha, bound), NEVER)


def seconds_text(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}s"


HEADER = ("scenario", "spec", "row", "caught", "median", "p90", "A/A false rb (95% up)")
LINE = "{:<18} {:<15} {:<16} {:>12} {:>6} {:>6} {:>22}  {}"


def print_table(title: str, blocks: Sequence[tuple[Scenario, str, list[Row]]]) -> None:
    """One table: (scenario, spec, rows) blocks, each row with its figures."""
    print()
    print(title)
    print(LINE.format(*HEADER, "outcomes: evidence/deadline/promoted/undecided; caused by"))
    for scenario, spec, rows in blocks:
        label = scenario.label
        for i, r in enumerate(rows):
            caught = f"{r.caught}/{r.replays} {100 * r.share:.0f}%"
            aa = scenario.signal is None and r.what != ORACLE
            false_rb = f"{100 * r.share:.1f}% ({100 * r.upper:.1f}%)" if aa else ""
            extra = ""
            if r.outcomes:
                mix = "/".join(str(r.outcomes.get(g, 0)) for g in GROUP_ORDER)
                broken = sum(n for g, n in r.outcomes.items() if g not in GROUP_ORDER)
                extra = mix + (f" (+{broken} broken)" if broken else "")
                if r.by:
                    extra += "; " + ", ".join(f"{k} {n}" for k, n in r.by.items())
            print(
                LINE.format(
                    label if i == 0 else "",
                    spec if i == 0 else "",
                    r.what,
                    caught,
                    seconds_text(r.median_s),
                    seconds_text(r.p90_s),
                    false_rb,
                    extra,
                ).rstrip()
            )


def overview_cell(rows: Sequence[Row], aa: bool) -> str:
    """A spec's whole-analysis figures in one cell of the overview."""
    whole = rows[0]
    mix = "/".join(str(whole.outcomes.get(g, 0)) for g in GROUP_ORDER)
    if aa:
        return f"{100 * whole.share:.1f}% (<={100 * whole.upper:.1f}%) {mix}"
    timing = f"{seconds_text(whole.median_s)}/{seconds_text(whole.p90_s)}"
    return f"{100 * whole.share:.0f}% {timing} {mix}"


def print_overview(
    traffics: Sequence[str],
    scenarios: Sequence[Scenario],
    specs: Sequence[str],
    cells: Mapping[tuple[str, str, str], Sequence[Row]],
) -> None:
    """Whole analysis only: per case and scenario, one cell per spec.

    A/A cells: false rollbacks (Wilson 95% upper bound); other cells: caught, median/p90 time
    to rollback; both with the outcome mix evidence/deadline/promoted/undecided.
    """
    print("\nOverview (whole analysis). A/A: false rollbacks (95% upper) and outcomes")
    print("evidence/deadline/promoted/undecided; others: caught, median/p90, outcomes.")
    width = 30
    print(f"{'case':<7} {'scenario':<18} " + " ".join(f"{s:<{width}}" for s in specs))
    for traffic in traffics:
        for scenario in scenarios:
            shown = [
                overview_cell(cells[(traffic, scenario.name, s)], scenario.signal is None)
                if (traffic, scenario.name, s) in cells
                else "-"
                for s in specs
            ]
            line = f"{traffic:<7} {scenario.label:<18} " + " ".join(f"{c:<{width}}" for c in shown)
            print(line.rstrip())
