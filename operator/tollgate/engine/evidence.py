"""Which checks take part in the sequential tests, and how their evidence reads in status.

A check takes part when its signal is a count of bad events among requests: errors for
errorRate, requests over the latency or TTFT objective for latency and ttft. (Cost units are
not: token counts per request are far from Poisson.) The rollout's alpha is split evenly over
them (Bonferroni), so the chance of any false rollback stays under alpha.
"""

from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import EvidenceStatus

SEQUENTIAL_CHECKS = ("errorRate", "latency", "ttft")


def sequential_checks(spec: RolloutSpec) -> tuple[str, ...]:
    """The spec's checks that take part, in a fixed order."""
    c = spec.checks
    if c is None:
        return ()
    present = {"errorRate": c.error_rate, "latency": c.latency, "ttft": c.ttft}
    return tuple(name for name in SEQUENTIAL_CHECKS if present[name] is not None)


def _rate(bad: float, total: float) -> str:
    return f"{bad:g}/{total:g} ({100 * bad / total:.2f}%)" if total else f"{bad:g}/0"


def explain_evidence(e: EvidenceStatus) -> str:
    """One line: the counts on both sides, the statistic and its boundary."""
    return (
        f"{e.name}: canary {_rate(e.canary_bad, e.canary_total)} vs stable "
        f"{_rate(e.stable_bad, e.stable_total)}, e-value {e.e_value:.3g} >= {e.boundary:.3g}"
    )


def burn(bad: float, total: float, objective_percent: float) -> float:
    """Error-budget burn rate: the error ratio over the ratio the objective allows."""
    return 0.0 if total <= 0 else (bad / total) / (1 - objective_percent / 100.0)
