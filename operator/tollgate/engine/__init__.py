"""Pure decisions: spec + status + observations + now -> Decision.

Nothing here does I/O, reads a clock, or imports kopf, httpx, kubernetes or asyncio
(import-linter enforces it), so every decision can be replayed, tabled and property-tested.
"""

from tollgate.engine.decide import decide
from tollgate.engine.decision import Decision, Notify, Promote, Rollback, SetWeight
from tollgate.engine.observations import MetricReading, Observations

__all__ = [
    "Decision",
    "MetricReading",
    "Notify",
    "Observations",
    "Promote",
    "Rollback",
    "SetWeight",
    "decide",
]
