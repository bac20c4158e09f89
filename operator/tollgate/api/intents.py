"""Requests from people (and Argo CD actions) to a running rollout.

They travel in one annotation, never in the spec, so GitOps tools that own the spec see no
drift: ``tollgate.dev/request: "<kind>@<id>"``. The id (a timestamp or any unique token) makes
each request act once: the operator records the last id it handled in status.
"""

import hashlib
from dataclasses import dataclass
from enum import StrEnum

REQUEST_ANNOTATION = "tollgate.dev/request"
ID_LIMIT = 256  # status.lastIntent's maxLength


class IntentKind(StrEnum):
    """What a person can ask of a rollout."""

    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"


@dataclass(frozen=True)
class Intent:
    """One request, identified so that it is handled once."""

    kind: IntentKind
    id: str


def parse_intent(value: str | None) -> Intent | None:
    """The intent in an annotation value, or None when it is absent or not understood."""
    if not value:
        return None
    kind, _, token = value.strip().partition("@")
    try:
        parsed = IntentKind(kind.strip().lower())
    except ValueError:
        return None
    ident = value.strip() if token else f"{parsed.value}@"
    if len(ident) > ID_LIMIT:  # stored in status as it is compared: it must fit unchanged
        digest = hashlib.sha256(ident.encode()).hexdigest()
        ident = f"{parsed.value}@sha256:{digest}"
    return Intent(kind=parsed, id=ident)
