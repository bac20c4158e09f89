"""Durations in the Go/Kubernetes form users already write ("30s", "1m30s", "2h").

They stay strings in the models so the stored object round-trips unchanged; the engine turns
them into seconds with :func:`seconds`. CEL rules in the CRD compare them with ``duration()``.
"""

import re
from typing import Annotated

from pydantic import Field

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32, examples=["30s", "1m30s", "2h"]),
]


def seconds(duration: str) -> float:
    """Seconds in a duration string; raises ValueError on anything but the Go form."""
    if not re.fullmatch(DURATION_PATTERN, duration):
        raise ValueError(f"invalid duration {duration!r}: use a number and unit, e.g. 30s, 1m30s")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(duration))
