"""``tollgate analyze --replay``: a rollout's analysis run against history, before the rollout.

The Canary or PromptRelease in the file is replayed from ``--from`` to ``--to`` on the
operator's own schedule and code (:mod:`tollgate.cli.replay`): a decision at every analysis
interval and every ``analysis.sequential.every`` in between, each reading only what is due, as
if the rollout had reached its first step at ``--from`` with the router following every step.
Each tick that read Prometheus prints the verdicts with their values and the decision. It
answers "would this release, with these checks, have been rolled back?" and "are these limits
too tight for our noise?".

Exit status (also in ``tollgate analyze --help``):

- 0: no rollback: the replay would promote, or the period ended first;
- 1: a rollback on evidence of harm (``AnalysisFailed``, ``RequiredCodeRolledBack``) or on
  repeated provider failures (``MetricsUnavailable``);
- 2: the file, the spec or the period is unusable (every problem is listed), or a usage error;
- 3: Prometheus cannot be reached;
- 4: no data for the rollout in that period;
- 5: the progress deadline came before any verdict (``InsufficientEvidence``, or
  ``ProgressDeadlineExceeded`` with data too thin for a verdict): a lack of evidence, not
  evidence of harm.
"""

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tollgate.api import API_VERSION
from tollgate.cli.manifests import ManifestError, load_documents
from tollgate.cli.replay import (
    ReplayOutcome,
    ReplayResult,
    Target,
    Tick,
    UnusableError,
    replay,
    target_from_document,
)
from tollgate.cli.tick_lines import describe_tick, timestamp

EXIT_STATUS_HELP = """exit status:
  0  no rollback: it would promote, or the period ended first
  1  rollback on evidence of harm (AnalysisFailed, RequiredCodeRolledBack) or on repeated
     provider failures (MetricsUnavailable)
  2  unusable file, spec or period, or a usage error
  3  Prometheus cannot be reached
  4  no data for the rollout in that period
  5  the deadline came before any verdict (InsufficientEvidence, or ProgressDeadlineExceeded
     with too little data): a lack of evidence, not evidence of harm"""


def parse_time(text: str) -> datetime:
    """RFC 3339 / ISO 8601 (``Z`` allowed) or unix seconds; naive times are UTC."""
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except (OverflowError, OSError) as exc:  # inf, 1e30: a number, but no time
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from exc
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_target(path: Path, prometheus: str | None) -> Target:
    """The first Canary or PromptRelease in the file, validated as the operator would."""
    try:
        docs = [d for d in load_documents(path) if isinstance(d, dict)]
    except ManifestError as exc:
        raise UnusableError(f"{path}: {exc}") from exc
    ours = [
        d
        for d in docs
        if d.get("apiVersion") == API_VERSION and d.get("kind") in ("Canary", "PromptRelease")
    ]
    if not ours:
        raise UnusableError(f"{path}: no Canary or PromptRelease ({API_VERSION}) in the file")
    return target_from_document(ours[0], prometheus, str(path))


def verdict_line(result: ReplayResult) -> str:
    """The last line of the report: what the operator would have done, and why."""
    at = timestamp(result.decided_at) if result.decided_at else "-"
    outcome = result.outcome
    if outcome is ReplayOutcome.PROMOTED:
        return f"verdict: would promote at {at} ({result.reason})"
    if outcome is ReplayOutcome.ROLLED_BACK:
        return f"verdict: rollback ({result.reason}) at {at}: {result.message}"
    if outcome is ReplayOutcome.INSUFFICIENT_EVIDENCE:
        return (
            f"verdict: no verdict, not enough evidence ({result.reason}) at {at}: the deadline "
            "came before the data could show the new version good or bad. This is a lack of "
            f"evidence, not evidence of harm: {result.message}"
        )
    return f"verdict: no rollback in {result.analyses} analyses (last: {result.reason})"


async def report(target: Target, start: datetime, end: datetime) -> int:
    """Replay, print every tick that read Prometheus and the verdict; the exit status."""
    print(f"replaying {target.label} from {start.isoformat()} to {end.isoformat()}")

    def show(tick: Tick) -> None:
        if tick.read:
            print(describe_tick(target.spec, tick), flush=True)

    result = await replay(target, start, end, on_tick=show)
    if result.outcome in (ReplayOutcome.UNUSABLE, ReplayOutcome.UNREACHABLE, ReplayOutcome.NO_DATA):
        print(result.message, file=sys.stderr)
    else:
        print(verdict_line(result))
    return result.exit_code


def run(args: argparse.Namespace) -> int:
    """The ``analyze`` command."""
    if args.to <= getattr(args, "from"):
        print("--to must be after --from", file=sys.stderr)
        return ReplayOutcome.UNUSABLE.exit_code
    try:
        target = load_target(Path(args.replay), args.prometheus)
    except UnusableError as exc:
        print(exc, file=sys.stderr)
        return ReplayOutcome.UNUSABLE.exit_code
    return asyncio.run(report(target, getattr(args, "from"), args.to))


def add_parser(sub: Any) -> None:
    analyze = sub.add_parser(
        "analyze",
        help="replay a rollout's analysis against historical Prometheus data",
        description="Replay a Canary's or PromptRelease's analysis on what Prometheus "
        "recorded, on the operator's own schedule and code.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument("--replay", required=True, metavar="FILE", help="Canary/PromptRelease")
    analyze.add_argument("--from", required=True, type=parse_time, help="start (RFC 3339)")
    analyze.add_argument("--to", required=True, type=parse_time, help="end (RFC 3339)")
    analyze.add_argument("--prometheus", help="Prometheus base URL (default: from the spec)")
    analyze.set_defaults(func=run)
