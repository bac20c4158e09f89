"""What is replayed: the regressions (one per scenario) and the traffic cases."""

from dataclasses import dataclass

from bench.replay_detection.distributions import Behaviour
from bench.replay_detection.history import Traffic

STABLE = Behaviour()


@dataclass(frozen=True)
class Scenario:
    """A canary's behaviour against the stable's; ``signal`` is what regressed (None: A/A)."""

    name: str
    label: str
    canary: Behaviour
    signal: str | None = None

    @property
    def oracle(self) -> bool:
        """Whether an oracle row is computed (latency x2 and the error regressions)."""
        return self.signal in ("latency", "errors")


SCENARIOS = (
    Scenario("aa", "A/A (identical)", STABLE),
    Scenario("latency_x2", "latency x2", Behaviour(latency_factor=2.0), "latency"),
    Scenario("ttft_x2", "TTFT x2", Behaviour(ttft_factor=2.0), "ttft"),
    Scenario("errors_2pct", "errors 1% -> 2%", Behaviour(error_rate=0.02), "errors"),
    Scenario("errors_5pct", "errors 1% -> 5%", Behaviour(error_rate=0.05), "errors"),
    Scenario("cost_x1_5", "cost/request x1.5", Behaviour(token_factor=1.5), "cost"),
)
TRAFFIC = (
    Traffic("20rps", 20.0, 0.10),
    Traffic("1rps", 1.0, 0.10),
    Traffic("100rps", 100.0, 0.05),
)
