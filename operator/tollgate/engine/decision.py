"""The engine's output: actions to execute in order, the new status, and when to look again."""

from dataclasses import dataclass
from enum import StrEnum

from tollgate.api.status import RolloutStatus


class EventKind(StrEnum):
    """Rollout events, for Kubernetes Events and notifications."""

    STARTED = "Started"
    ANALYSIS = "Analysis"
    STEP = "Step"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    STALLED = "Stalled"
    EXTENDED = "Extended"
    REQUEST_IGNORED = "RequestIgnored"


@dataclass(frozen=True)
class SetWeight:
    """Route ``weight`` percent of traffic to the new version (0 = all on stable)."""

    weight: int


@dataclass(frozen=True)
class Promote:
    """Make ``revision`` the stable version (copy it to primary / flip the prompt pointer)."""

    revision: str


@dataclass(frozen=True)
class Rollback:
    """Return everything to the stable version because of ``reason``."""

    revision: str
    reason: str


@dataclass(frozen=True)
class Notify:
    """Tell people: a Kubernetes Event plus the configured notification targets."""

    event: EventKind
    reason: str
    message: str
    warning: bool = False


Action = SetWeight | Promote | Rollback | Notify


@dataclass(frozen=True)
class Decision:
    """Everything one reconcile must do. Actions run in order; status is recorded once."""

    actions: tuple[Action, ...]
    status: RolloutStatus
    requeue_after: float | None
    reason: str
    message: str

    @property
    def weight_writes(self) -> tuple[int, ...]:
        """The weights this decision writes, in order."""
        return tuple(a.weight for a in self.actions if isinstance(a, SetWeight))
