"""Figures per scenario and policy, the best reference settings, the bars, the printed table.

Time-to-rollback is reported as nearest-rank median and p95 over all replays, a replay without
a rollback counting as never (so a median can be "never" when fewer than half roll back).
"Caught" is the share rolled back by promotion. The false-rollback rate of a setting is its
caught share on the A/A runs, with a Wilson 95% upper bound. The best reference setting for a
scenario is the one with the lowest median among those whose A/A false-rollback rate is at most
the larger of Tollgate's and 1%, so every comparison holds the false-rollback rate fixed.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.detection.generator import Timeline, Traffic

NEVER = math.inf
FAMILIES = ("flagger", "argo", "naive")
FALSE_ROLLBACK_BAR = 0.01
WILSON_BAR = 0.015
CATCH_BAR = 0.95
SPEEDUP_BAR = 4.0
ABSOLUTE_BAR_S = 60.0


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank (a value that occurred, possibly NEVER)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def wilson_upper(hits: int, n: int, z: float = 1.959964) -> float:
    """Upper end of the Wilson score interval for a proportion (95% two-sided by default)."""
    if n <= 0:
        return 1.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


@dataclass(frozen=True)
class Figures:
    median_s: float
    p95_s: float
    caught: int
    replays: int

    @property
    def catch_rate(self) -> float:
        return self.caught / self.replays if self.replays else 0.0

    @classmethod
    def of(cls, times: Sequence[float], promotion: float) -> "Figures":
        caught = sum(t <= promotion for t in times)
        return cls(nearest_rank(times, 0.5), nearest_rank(times, 0.95), caught, len(times))


@dataclass(frozen=True)
class Bar:
    name: str
    detail: str
    passed: bool


@dataclass
class Summary:
    scenarios: list[tuple[str, str, bool]]
    tollgate: str
    defaults: dict[str, str]
    figures: dict[tuple[str, str, str], Figures] = field(default_factory=dict)
    target: dict[str, float] = field(default_factory=dict)
    best: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    bars: list[Bar] = field(default_factory=list)
    promotion: dict[str, float] = field(default_factory=dict)
    tolerances: list[str] = field(default_factory=lambda: [""])

    def families(self) -> list[str]:
        """Every reference family: each of Flagger and Argo per tolerance set, and naive."""
        return [f + t for f in ("flagger", "argo") for t in self.tolerances] + ["naive"]

    def false_rollbacks(self, traffic: str, setting: str) -> tuple[float, float]:
        """(rate, Wilson 95% upper bound) on the A/A runs."""
        f = self.figures[(traffic, "aa", setting)]
        return f.catch_rate, wilson_upper(f.caught, f.replays)

    def settings(self, traffic: str, family: str) -> list[str]:
        return sorted(
            {s for (t, sc, s) in self.figures if t == traffic and sc == "aa"}
            & {s for (t, _, s) in self.figures if t == traffic and s.startswith(family + " ")}
        )

    def eligible(self, traffic: str, family: str) -> list[str]:
        target = self.target[traffic]
        return [
            s
            for s in self.settings(traffic, family)
            if self.false_rollbacks(traffic, s)[0] <= target + 1e-12
        ]

    def as_json(self) -> dict[str, Any]:
        def seconds(v: float) -> float | None:
            return None if math.isinf(v) or math.isnan(v) else round(v, 1)

        rows = []
        for (traffic, scenario, setting), f in sorted(self.figures.items()):
            rate, upper = self.false_rollbacks(traffic, setting)
            rows.append(
                {
                    "traffic": traffic,
                    "scenario": scenario,
                    "setting": setting,
                    "median_s": seconds(f.median_s),
                    "p95_s": seconds(f.p95_s),
                    "catch_rate": round(f.catch_rate, 4),
                    "false_rollback_rate": round(rate, 4),
                    "false_rollback_upper95": round(upper, 4),
                }
            )
        return {
            "results": rows,
            "false_rollback_target": self.target,
            "best": [
                {"traffic": t, "scenario": sc, "family": fam, "setting": s}
                for (t, sc, fam), s in sorted(self.best.items())
            ],
            "bars": [{"name": b.name, "detail": b.detail, "passed": b.passed} for b in self.bars],
        }


def summarise(
    times: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
    scenarios: Sequence[tuple[str, str, bool]],
    promotion: Mapping[str, float],
    defaults: Mapping[str, str],
    tollgate: str,
    tolerances: Sequence[str] = ("",),
) -> Summary:
    """Figures, best settings and bars from rollback times per traffic, scenario and setting.

    ``tolerances`` are the suffixes of the reference families' tolerance sets ("" first: the
    set the main comparison uses)."""
    summary = Summary(
        list(scenarios),
        tollgate,
        dict(defaults),
        promotion=dict(promotion),
        tolerances=list(tolerances),
    )
    for traffic, by_scenario in times.items():
        for scenario, by_setting in by_scenario.items():
            for setting, values in by_setting.items():
                summary.figures[(traffic, scenario, setting)] = Figures.of(
                    values, promotion[traffic]
                )
    for traffic in times:
        own = summary.false_rollbacks(traffic, tollgate)[0]
        summary.target[traffic] = max(own, FALSE_ROLLBACK_BAR)
        for scenario, _, _ in scenarios:
            if scenario == "aa":
                continue
            for family in summary.families():
                candidates = summary.eligible(traffic, family)
                summary.best[(traffic, scenario, family)] = min(
                    candidates,
                    key=lambda s: (
                        summary.figures[(traffic, scenario, s)].median_s,
                        summary.figures[(traffic, scenario, s)].p95_s,
                        summary.false_rollbacks(traffic, s)[0],
                    ),
                    default=None,
                )
    summary.bars = bars(summary)
    return summary


def _s(v: float) -> str:
    if math.isnan(v):
        return "-"
    return "never" if math.isinf(v) else f"{v:.0f}s"


def bars(summary: Summary) -> list[Bar]:
    out = []
    traffics = list(summary.target)
    for traffic in traffics:
        rate, upper = summary.false_rollbacks(traffic, summary.tollgate)
        f = summary.figures[(traffic, "aa", summary.tollgate)]
        out.append(
            Bar(
                f"false rollbacks <= 1%, Wilson upper <= 1.5% ({traffic})",
                f"{f.caught}/{f.replays} = {rate:.2%}, upper {upper:.2%}",
                rate <= FALSE_ROLLBACK_BAR and upper <= WILSON_BAR,
            )
        )
    for traffic in traffics:
        for scenario, label, doubling in summary.scenarios:
            if not doubling:
                continue
            f = summary.figures[(traffic, scenario, summary.tollgate)]
            out.append(
                Bar(
                    f">= 95% of 2x regressions caught before promotion ({traffic}, {label})",
                    f"{f.caught}/{f.replays} = {f.catch_rate:.1%}",
                    f.catch_rate >= CATCH_BAR,
                )
            )
    traffic = traffics[0]
    for scenario, label, _ in summary.scenarios:
        if scenario == "aa":
            continue
        own = summary.figures[(traffic, scenario, summary.tollgate)].median_s
        comparisons = [(["flagger"], "best Flagger")]
        if len(summary.tolerances) > 1:
            every = ["flagger" + t for t in summary.tolerances]
            comparisons.append((every, "best Flagger over all tolerance sets"))
        for families, which in comparisons:
            best = min(
                (b for f in families if (b := summary.best[(traffic, scenario, f)])),
                key=lambda s: summary.figures[(traffic, scenario, s)].median_s,
                default=None,
            )
            ref = summary.figures[(traffic, scenario, best)].median_s if best else NEVER
            ratio = ref / own if own > 0 and not math.isinf(own) else 0.0
            against = f"{best} {_s(ref)}" if best else "no Flagger setting holds the rate"
            out.append(
                Bar(
                    f"median time-to-rollback <= 1/4 of {which} and <= 60 s ({traffic}, {label})",
                    f"Tollgate {_s(own)} vs {against} (x{ratio:.1f})",
                    ref >= SPEEDUP_BAR * own and own <= ABSOLUTE_BAR_S,
                )
            )
    return out


def print_report(
    summary: Summary,
    replays: int,
    timeline: Timeline,
    traffic: Mapping[str, Traffic],
    elapsed: float,
) -> None:
    header = ("scenario", "policy", "setting", "median", "p95", "caught", "A/A false rb (95% up)")
    line = "{:<21} {:<8} {:<25} {:>6} {:>6} {:>6} {:>21}"
    for name, t in traffic.items():
        print()
        print(
            f"{name}: {t.rps:g} req/s in total, canary {t.steps[0]:g}% -> {t.steps[-1]:g}% "
            f"(+{t.steps[1] - t.steps[0]:g} points every {t.step_seconds:g}s, promoted at "
            f"{t.promotion:g}s), scrape every {timeline.scrape:g}s, {replays} replays each."
        )
        print(
            "Seconds from the canary's first request to the rollback; 'never' = none within "
            f"{timeline.horizon:g}s; caught = rolled back by promotion."
        )
        print(line.format(*header))
        for scenario, label, _ in summary.scenarios:
            for policy, setting, tag in _rows(summary, name, scenario):
                if setting is None:
                    print(line.format(label, policy, f"(no {tag})", "", "", "", ""))
                    label = ""
                    continue
                f = summary.figures[(name, scenario, setting)]
                rate, upper = summary.false_rollbacks(name, setting)
                aa = scenario == "aa"
                print(
                    line.format(
                        label,
                        policy,
                        f"{_setting(setting)} ({tag})" if tag else _setting(setting),
                        "-" if aa else _s(f.median_s),
                        "-" if aa else _s(f.p95_s),
                        "-" if aa else f"{f.catch_rate:.1%}",
                        f"{rate:.2%} ({upper:.2%})",
                    )
                )
                label = ""
        target = summary.target[name]
        print(f"Settings with A/A false rollbacks <= {target:.2%} (eligible as 'best'):")
        for family in FAMILIES:
            ok = summary.eligible(name, family)
            listed = ", ".join(_setting(s) for s in ok) if ok else "none"
            print(f"  {family}: {listed}")
        if len(summary.tolerances) > 1:
            _print_tolerances(summary, name)
    print()
    for bar in summary.bars:
        print(f"{'PASS' if bar.passed else 'FAIL'}  {bar.name}: {bar.detail}")
    print(f"run time {elapsed:.1f}s")


def _setting(key: str) -> str:
    """A setting's key without its family name."""
    rest = key.partition(" ")[2]
    return rest or "alpha 0.01 / 4 checks"


def _shown(variant: str, scenario: str) -> bool:
    """Diagnostic variants appear under A/A and the scenario they are about."""
    if variant.endswith("cost-as-tokens"):
        return scenario in ("aa", "cost_x1_5")
    if variant.endswith("oracle errors x2"):
        return scenario in ("aa", "errors_plus_1pt")
    if variant.endswith("oracle errors x3"):
        return scenario in ("aa", "errors_x3")
    return True


def _rows(summary: Summary, traffic: str, scenario: str) -> list[tuple[str, str | None, str]]:
    """(policy, setting, tag) rows of one scenario: Tollgate, then each family's default and,
    for regressions, its best setting at the false-rollback target."""
    rows: list[tuple[str, str | None, str]] = [("tollgate", summary.tollgate, "")]
    variants = sorted(
        s
        for (t, sc, s) in summary.figures
        if t == traffic and sc == scenario and s.startswith(summary.tollgate + " ")
    )
    rows += [("tollgate", s, "") for s in variants if _shown(s, scenario)]
    for family in FAMILIES:
        default = summary.defaults[family]
        if scenario == "aa":
            rows.append((family, default, "default"))
            continue
        best = summary.best[(traffic, scenario, family)]
        if best == default:
            rows.append((family, default, "default, best"))
        else:
            rows.append((family, default, "default"))
            rows.append((family, best, "best"))
    return rows


def _print_tolerances(summary: Summary, traffic: str) -> None:
    """Per scenario, the best setting's median for every tolerance set of Flagger and Argo."""
    families = [f for f in summary.families() if f != "naive"]
    cell = "{:>16}"
    print(f"Best setting per tolerance set (A/A false rollbacks <= {summary.target[traffic]:.2%}):")
    print(
        ("{:<21} {:>8}" + " " + " ".join([cell] * len(families))).format(
            "scenario", "tollgate", *families
        )
    )
    for scenario, label, _ in summary.scenarios:
        if scenario == "aa":
            continue
        cells = []
        for family in families:
            best = summary.best[(traffic, scenario, family)]
            f = summary.figures[(traffic, scenario, best)] if best else None
            cells.append(f"{_s(f.median_s)} {_setting(best)}" if f and best else "-")
        own = summary.figures[(traffic, scenario, summary.tollgate)].median_s
        print(
            ("{:<21} {:>8}" + " " + " ".join([cell] * len(families))).format(label, _s(own), *cells)
        )
