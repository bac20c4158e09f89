"""Durations in the Go/Kubernetes form users already write ("30s", "1m30s", "2h").

They stay strings in the models so the stored object round-trips unchanged; the engine turns
them into seconds with :func:`seconds`. CEL rules in the CRD compare them with ``duration()``.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, Field

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

GO_MAX_SECONDS = (2**63 - 1) / 1e9  # a Go time.Duration (what CEL's duration() holds)
MAX_CALL_SECONDS = 60.0  # the longest one external call (a query, a webhook) may take


def seconds(duration: str) -> float:
    """Seconds in a duration string; raises ValueError on anything but the Go form."""
    if not re.fullmatch(DURATION_PATTERN, duration):
        raise ValueError(f"invalid duration {duration!r}: use a number and unit, e.g. 30s, 1m30s")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(duration))


def _representable(duration: str) -> str:
    if seconds(duration) > GO_MAX_SECONDS:
        raise ValueError(f"duration {duration!r} is longer than Kubernetes can hold (292 years)")
    return duration


def _call_length(duration: str) -> str:
    length = seconds(duration)
    if not 0 < length <= MAX_CALL_SECONDS:
        raise ValueError(
            f"timeout {duration!r} must be more than 0 and at most {MAX_CALL_SECONDS:g}s: one "
            "slow endpoint must not hold a rollout's decisions"
        )
    return duration


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32, examples=["30s", "1m30s", "2h"]),
    AfterValidator(_representable),
]
CallTimeout = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=32,
        examples=["5s", "10s"],
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"duration(self) > duration('0s') && "
                    f"duration(self) <= duration('{MAX_CALL_SECONDS:g}s')",
                    "message": f"must be more than 0s and at most {MAX_CALL_SECONDS:g}s",
                }
            ]
        },
    ),
    AfterValidator(_call_length),
]
