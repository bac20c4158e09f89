"""Make a status document one the CRD's schema admits, whatever the engine put in it.

The engine builds status with ``model_copy``, which does not validate, and its strings come
from users (a request annotation, a selector inside a query) and from Prometheus. One value the
schema refuses (a 300-character request id in ``lastIntent``, a 9,000-character query, a
non-finite float, which ``json.dumps`` writes as the invalid JSON token ``Infinity``) makes the
API server refuse the whole status write, on every tick: the rollout freezes where it is. So
every status is fitted to the schema before it is written: long strings are cut (with a mark),
long lists keep their newest entries, numbers are clamped to their bounds (an infinity becomes
the largest float, NaN is dropped). The schema is the one ``make crds`` writes, so the two
cannot disagree.
"""

import functools
import math
import sys
from typing import Any

from pydantic_core import to_jsonable_python

from tollgate.api.crds import model_schema
from tollgate.api.status import RolloutStatus

JSON = dict[str, Any]
CUT = "…"


@functools.cache
def status_schema() -> JSON:
    """The structural schema of status, as in the CRDs (computed once)."""
    return model_schema(RolloutStatus, keep_defaults=False)


@functools.cache
def status_fields() -> frozenset[str]:
    """The top-level status fields (camelCase)."""
    return frozenset(status_schema().get("properties", {}))


def to_json(value: Any) -> Any:
    """Timestamps and enums as JSON values (the fitted floats are all finite by then)."""
    return to_jsonable_python(value)


def fit(value: Any, schema: JSON) -> Any:
    """``value`` changed as little as possible to meet ``schema``'s bounds; None drops it."""
    kind = schema.get("type")
    if isinstance(value, dict):
        return _fit_object(value, schema)
    if isinstance(value, list):
        items = schema.get("items") or {}
        fitted = [v for v in (fit(item, items) for item in value) if v is not None]
        limit = schema.get("maxItems")
        return fitted[-int(limit) :] if limit is not None and len(fitted) > limit else fitted
    if isinstance(value, str):
        limit = schema.get("maxLength")
        if limit is not None and len(value) > limit:
            return value[: max(0, int(limit) - len(CUT))] + CUT
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):  # the largest finite value instead
        value = math.copysign(sys.float_info.max, value)
    if isinstance(value, (int, float)) and kind in ("integer", "number"):
        return _clamp(value, schema)
    return value


def _fit_object(value: JSON, schema: JSON) -> JSON:
    properties: JSON = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    required = set(schema.get("required") or ())
    out: JSON = {}
    for key, child in value.items():
        sub = properties.get(key) or (extra if isinstance(extra, dict) else {})
        fitted = fit(child, sub)
        if fitted is None and key in required and sub.get("type") == "number":
            fitted = 0.0  # a NaN where a number must be: the neutral value, not a refused write
        if fitted is not None:
            out[key] = fitted
    limit = schema.get("maxProperties")
    if limit is not None and len(out) > limit:
        out = dict(list(out.items())[: int(limit)])
    return out


def _clamp(value: float, schema: JSON) -> float:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return value
