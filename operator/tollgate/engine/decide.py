"""The decision core shared by Canary and PromptRelease.

``decide(spec, status, observations, now)`` walks one tick of the rollout state machine:

    Initializing -> Succeeded (stable adopted)
    Succeeded/RolledBack --new revision--> Progressing (step 0, no traffic)
    Progressing: canary ready -> BeforeRollout gates -> step 1 ... step n, each step judged by
        analysesPerStep passing analyses, optional pauses and BeforeStep gates in between
    last step passed -> BeforePromotion gates -> Promoting -> Succeeded
    failures over failureLimit, provider errors over the limit, deadline, abort -> RollingBack
        (weight 0 in the same decision) -> RolledBack once the router reads back 0

Safety rules that hold in every path: only a Pass moves the weight up, and only while the
router reads back the weight status says is in effect; missing data, thin data, provider
errors and router errors never do; a rollback writes weight 0 in the very decision that starts it;
a terminal phase stays put until a new revision or a retry; a new revision mid-rollout starts
again from step 0. Analysis keeps running while paused or waiting at a gate, so a breach there
still rolls back.
"""

from datetime import datetime, timedelta

from tollgate.api.analysis import ErrorPolicy, EvidencePolicy
from tollgate.api.durations import seconds
from tollgate.api.gates import GateStage, GateType
from tollgate.api.intents import Intent, IntentKind
from tollgate.api.rollout import RolloutSpec
from tollgate.api.status import (
    HISTORY_LIMIT,
    TERMINAL_PHASES,
    HistoryEntry,
    Phase,
    RolloutStatus,
    Verdict,
)
from tollgate.engine.burn import update_budget
from tollgate.engine.checks import judge_all, judge_by_tests, outcome, rules_for
from tollgate.engine.conditions import conditions_for
from tollgate.engine.decision import (
    Action,
    Decision,
    EventKind,
    Notify,
    Promote,
    Rollback,
    SetWeight,
)
from tollgate.engine.evidence import (
    PlannedTest,
    explain_evidence,
    limit_test,
    shortfall,
    split_alpha,
    tests_of,
    unresolved,
    update_evidence,
)
from tollgate.engine.explain import analysis_report
from tollgate.engine.observations import GateState, Observations, RequirementState
from tollgate.engine.plan import StepPlan, plan_for, weighted_seconds_left
from tollgate.engine.schedule import analysis_due, counts_every

ACTIVE_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})
SETTLING_REQUEUE = 5.0
WAITING_FOR_EVIDENCE = frozenset({"WaitingForData", "WaitingForEvidence"})


def decide(
    spec: RolloutSpec,
    status: RolloutStatus,
    observations: Observations,
    now: datetime,
    generation: int | None = None,
) -> Decision:
    """Decide one tick. Pure: the same arguments always give the same Decision."""
    return _Tick(spec, status, observations, now, generation).run()


class _Tick:
    """The working state of one decision; discarded afterwards."""

    def __init__(
        self,
        spec: RolloutSpec,
        status: RolloutStatus,
        obs: Observations,
        now: datetime,
        generation: int | None,
    ) -> None:
        self.spec = spec
        self.before = status
        self.st = status
        self.obs = obs
        self.now = now
        self.generation = generation
        self.plan: StepPlan = plan_for(spec.analysis)
        self.interval = seconds(spec.analysis.interval)
        self.deadline = seconds(spec.analysis.progress_deadline)
        self.actions: list[Action] = []
        self.reason = status.reason or ""
        self.message = status.message or ""
        self.intent: Intent | None = None
        self.waiting_for_requirement = False

    # -- small helpers ---------------------------------------------------------------------

    def set(self, **changes: object) -> None:
        self.st = self.st.model_copy(update=changes)

    @property
    def phase(self) -> Phase:
        return self.st.phase or Phase.INITIALIZING

    def transition(self, phase: Phase, reason: str, message: str) -> None:
        self.reason, self.message = reason, message
        self.set(phase=phase, reason=reason, message=message)

    def note(self, reason: str, message: str) -> None:
        """Explain a hold without changing phase."""
        self.reason, self.message = reason, message
        self.set(reason=reason, message=message)

    def note_progress(self, reason: str, message: str) -> None:
        """Explain an analysis outcome; a pause keeps its own reason (the checks say the rest)."""
        if self.phase is Phase.PROGRESSING:
            self.note(reason, message)

    def set_weight(self, weight: int) -> None:
        self.set(canary_weight=weight)
        self.actions.append(SetWeight(weight))

    def notify(self, event: EventKind, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(Notify(event, reason, message, warning))

    def take_intent(self, *kinds: IntentKind) -> IntentKind | None:
        """Consume the pending intent if it is one of ``kinds``."""
        if self.intent is not None and self.intent.kind in kinds:
            kind = self.intent.kind
            self.intent = None
            return kind
        return None

    @property
    def router_confirms(self) -> bool:
        """The router reads back the weight status says is in effect."""
        return self.obs.weight is not None and self.obs.weight == self.st.canary_weight

    def elapsed(self, since: datetime | None) -> float:
        return (self.now - since).total_seconds() if since is not None else 0.0

    # -- the tick --------------------------------------------------------------------------

    def run(self) -> Decision:
        intent = self.obs.intent
        if intent is not None and intent.id != self.st.last_intent:
            self.intent = intent
            self.set(last_intent=intent.id)
        if self.spec.suspend:
            if self.phase in ACTIVE_PHASES and self.take_intent(IntentKind.ABORT):
                self.rollback("Aborted", "rollback requested by a user while suspended")
            elif self.reason != "Suspended":
                self.note("Suspended", "spec.suspend is true: the rollout is frozen where it is")
            return self.finish()

        if self.phase is Phase.INITIALIZING:
            self.initialize()
        if self.phase in TERMINAL_PHASES:
            self.idle()
        elif self.phase in ACTIVE_PHASES:
            self.follow_revision()
        if self.phase in ACTIVE_PHASES:
            self.progress()
        elif self.phase is Phase.PROMOTING:
            self.follow_promotion()
        elif self.phase is Phase.ROLLING_BACK:
            self.rolling_back()
        return self.finish()

    def initialize(self) -> None:
        stable = self.obs.stable_revision
        if stable is None:
            why = self.obs.target_message or "waiting for the stable version to exist"
            self.note("Initializing", why)
            return
        self.set(stable_revision=stable, revision=stable, total_steps=len(self.plan.weights))
        self.transition(
            Phase.SUCCEEDED, "Initialized", f"stable revision {stable} serves all traffic"
        )

    def idle(self) -> None:
        """Succeeded or RolledBack: wait for a new revision (or a retry)."""
        rev = self.obs.revision
        if rev is None:
            if self.obs.target_message:
                self.note("TargetNotFound", self.obs.target_message)
            return
        retry = self.take_intent(IntentKind.RETRY)
        if rev == self.st.stable_revision:
            if self.phase is Phase.ROLLED_BACK and rev != self.st.revision:
                self.set(revision=rev)
                self.transition(
                    Phase.SUCCEEDED, "RevertedToStable", f"target is back on stable revision {rev}"
                )
            return
        if rev != self.st.revision:
            self.start_rollout(rev, "NewRevision", f"new revision {rev} detected")
        elif retry is not None and self.phase is Phase.ROLLED_BACK:
            self.start_rollout(rev, "Retry", f"retrying revision {rev} on request")

    def follow_revision(self) -> None:
        """A rollout in flight whose target changed: revert, or start over from step 0."""
        rev = self.obs.revision
        if rev is None and self.obs.target_gone:
            self.target_deleted()
            return
        if rev is None or rev == self.st.revision:
            return
        if rev == self.st.stable_revision:
            if self.st.canary_weight != 0:
                self.set_weight(0)
            self.set(revision=rev, pending_gates=[])
            self.transition(
                Phase.SUCCEEDED, "RevertedToStable", f"target is back on stable revision {rev}"
            )
            return
        self.start_rollout(
            rev,
            "NewRevision",
            f"revision {rev} replaced {self.st.revision} mid-rollout; starting again from step 0",
        )

    def target_deleted(self) -> None:
        """The target is gone: its Service has no pods, so its share of traffic goes back."""
        why = self.obs.target_message or "the target no longer exists"
        self.rollback(
            "TargetNotFound",
            f"{why} while revision {self.st.revision} was in {self.phase.value}: "
            "traffic back on the stable version",
        )

    def follow_promotion(self) -> None:
        """Promoting, bounded like every phase: by a deadline, and by the target staying put.

        Traffic on the canary track goes to whatever the target runs now. A target that moved
        on to a revision nobody analysed (or was deleted) must not keep the canary's weight,
        and a promotion that cannot land must not hold it forever.
        """
        rev, promoting = self.obs.revision, self.st.revision or ""
        if self.obs.stable_revision == promoting:
            self.promoting()  # it landed: done, whatever the target does next
        elif rev is None and self.obs.target_gone:
            self.target_deleted()
        elif rev is not None and rev != promoting:
            self.start_rollout(
                rev,
                "NewRevision",
                f"revision {rev} replaced {promoting} before its promotion completed; "
                f"{promoting} was not promoted: starting again from step 0",
            )
        elif self.elapsed(self.st.step_started_at) > self.deadline:
            self.rollback(
                "PromotionStalled",
                f"revision {promoting} was not promoted within "
                f"{self.spec.analysis.progress_deadline} (the stable track does not run it "
                f"yet; last: {self.message}): traffic back on the stable version",
            )
        else:
            self.promoting()

    def start_rollout(self, rev: str, reason: str, message: str) -> None:
        if self.st.canary_weight != 0:
            self.set_weight(0)
        self.set(
            revision=rev,
            current_step=0,
            total_steps=len(self.plan.weights),
            failed_analyses=0,
            consecutive_errors=0,
            step_passed_analyses=0,
            step_samples=0,
            rollout_started_at=self.now,
            step_started_at=self.now,
            step_completed_at=None,
            last_analysis_at=None,
            paused_by_user=False,
            approved_gates=None,
            pending_gates=[],
            checks=[],
            evidence=[],
            budget=None,
            last_count_at=None,
        )
        self.transition(Phase.PROGRESSING, reason, message)
        self.notify(EventKind.STARTED, reason, message)

    # -- progressing -------------------------------------------------------------------------

    def progress(self) -> None:
        if self.take_intent(IntentKind.ABORT):
            self.rollback("Aborted", "rollback requested by a user")
            return
        if self.requirement_failed():
            return
        if self.obs.counts:
            served = max(b.canary_total for b in self.obs.counts.values())
            self.set(last_count_at=self.now, step_samples=self.st.step_samples + served)
        if self.evidence_rejects() or self.budget_burns():
            self.report_analysis()
            return
        if self.take_intent(IntentKind.PROMOTE):
            if self.requirement_met():
                self.promote("ManualPromotion", "promotion requested by a user")
            return
        if self.take_intent(IntentKind.PAUSE):
            self.set(paused_by_user=True)
            self.pause("PausedByUser", "paused on request")
        if self.phase is Phase.PAUSED and self.take_intent(IntentKind.RESUME):
            self.set(
                paused_by_user=False,
                approved_gates=str(self.st.current_step),
                step_started_at=self.now,
            )
            self.transition(Phase.PROGRESSING, "Resumed", "resumed on request")

        self.analyse()
        self.warn_unresolvable()
        self.report_analysis()
        if self.phase not in ACTIVE_PHASES or self.st.paused_by_user:
            return
        if self.obs.revision is None:  # unreadable this tick: never step up what is not seen
            why = self.obs.target_message or "the target cannot be read"
            self.note_progress("TargetUnavailable", f"{why}; holding at {self.st.canary_weight}%")
        elif self.st.current_step == 0:
            self.begin_traffic()
        else:
            self.advance()
        if self.phase is Phase.PROGRESSING:
            self.check_deadline()

    def analysis_due(self) -> bool:
        return analysis_due(self.spec, self.st, self.now)

    def countable(self, check: str) -> tuple[PlannedTest, ...]:
        """The check's tests the metrics can feed (the others' limits are judged per window)."""
        return tuple(t for t in tests_of(self.spec, check) if t.name not in self.obs.untestable)

    @property
    def tested(self) -> bool:
        """Checks are judged by their sequential tests (the default), not per window."""
        return self.spec.analysis.sequential.enabled and not self.spec.skip_analysis

    def analyse(self) -> None:
        """Count this tick's analysis, if one is due and was taken."""
        if self.spec.skip_analysis or self.obs.metrics is None or not self.analysis_due():
            return
        rules = rules_for(self.spec)
        limits = self.spec.analysis
        results = judge_all(rules, self.obs.metrics, limits.min_samples)
        if self.tested:
            readings = {r.check: r for r in self.obs.metrics}
            results = tuple(
                judge_by_tests(
                    rule,
                    window,
                    readings.get(rule.name),
                    tests,
                    self.st.evidence,
                    self.st.step_samples,
                    limits.min_samples,
                )
                if (tests := self.countable(rule.name))
                else window
                for rule, window in zip(rules, results, strict=True)
            )
        verdict = outcome(rules, results)
        self.set(checks=list(results), last_analysis_at=self.now)
        failing = ", ".join(r.name for r in results if r.verdict is not Verdict.PASS)
        if verdict is Verdict.FAIL:
            failed = self.st.failed_analyses + 1
            self.set(failed_analyses=failed, consecutive_errors=0, step_passed_analyses=0)
            detail = "; ".join(
                f"{r.name}: {r.message}" for r in results if r.verdict is Verdict.FAIL
            )
            waiting = [r.name for r in results if r.verdict is Verdict.INCONCLUSIVE]
            if waiting:
                detail += f" (still waiting for data: {', '.join(waiting)})"
            if failed > limits.failure_limit:
                self.rollback("AnalysisFailed", f"analysis failed ({detail})")
            else:
                self.note_progress(
                    "AnalysisFailed",
                    f"analysis failed {failed} of {limits.failure_limit + 1} allowed ({detail})",
                )
        elif verdict is Verdict.ERROR:
            errors = self.st.consecutive_errors + 1
            self.set(consecutive_errors=errors)
            if errors > limits.consecutive_error_limit:
                if limits.on_consecutive_errors is ErrorPolicy.ROLLBACK:
                    self.rollback(
                        "MetricsUnavailable",
                        f"metric provider failed {errors} analyses in a row ({failing})",
                    )
                    return
                self.note_progress(
                    "MetricsUnavailable",
                    f"metric provider failed {errors} analyses in a row ({failing}); holding",
                )
            else:
                self.note_progress("MetricsError", f"metric provider error ({failing}); holding")
        elif verdict is Verdict.INCONCLUSIVE:
            self.set(consecutive_errors=0)
            detail = "; ".join(
                f"{r.name}: {r.message}" for r in results if r.verdict is Verdict.INCONCLUSIVE
            )
            self.note_progress(
                "WaitingForData", f"not enough data to judge ({detail or 'no checks'})"
            )
        elif not self.router_confirms:
            self.set(consecutive_errors=0)
            self.note_progress(
                "WaitingForRouter",
                f"checks passed but the router reads {self.obs.weight}, not "
                f"{self.st.canary_weight}%: the pass is not counted",
            )
        else:
            self.set(consecutive_errors=0, step_passed_analyses=self.st.step_passed_analyses + 1)
            self.note_progress(
                "AnalysisPassed", f"all checks passed at weight {self.st.canary_weight}%"
            )

    def warn_unresolvable(self) -> None:
        """Say, on each test the plan cannot resolve at the traffic seen, what it would take.

        The canary's requests per weight-percent-second at this step, times what the rest of
        the plan can show (engine/plan.py), is the most evidence the rollout can still gather.
        """
        weight, spent = self.st.canary_weight, self.elapsed(self.st.step_started_at)
        if not self.tested or self.st.last_analysis_at != self.now or weight <= 0 or spent <= 0:
            return
        rate = self.st.step_samples / (weight * spent)
        ahead = rate * weighted_seconds_left(self.spec.analysis, self.st.current_step, spent)
        warned = []
        for e in self.st.evidence:
            reachable = e.canary_total + ahead
            if e.verdict is Verdict.FAIL or (e.needed is not None and e.needed <= reachable):
                continue
            need = "no sample can" if e.needed is None else f"{e.needed:,.0f} are needed"
            warning = (
                f"; at the traffic seen ({rate * weight:.3g} canary requests/s at {weight}%) the "
                f"plan can reach about {reachable:,.0f} canary requests and {need} to resolve "
                "this limit: more traffic, a longer evidenceDeadline or a larger "
                "sequential.detect would"
            )
            warned.append(e.model_copy(update={"message": e.message + warning}))
        if warned:
            names = {w.name for w in warned}
            self.set(evidence=[*[e for e in self.st.evidence if e.name not in names], *warned])
            self.set(evidence=sorted(self.st.evidence, key=lambda e: e.name))

    def evidence_rejects(self) -> bool:
        """Feed this reading's counts to the sequential tests; roll back on a rejection."""
        settings = self.spec.analysis.sequential
        if not self.obs.counts or not settings.enabled or self.spec.skip_analysis:
            return False
        updated = update_evidence(
            self.spec,
            self.st.evidence,
            self.obs.counts,
            self.obs.count_queries,
            self.obs.objectives,
            self.obs.amounts,
            self.obs.untestable,
        )
        self.set(evidence=updated.evidence)
        if updated.rejected:
            why = "; ".join(explain_evidence(e) for e in updated.rejected)
            self.rollback("AnalysisFailed", "sequential test: " + why)
            return True
        return False

    def budget_burns(self) -> bool:
        """The canary's own error-budget burn, tier by tier; a tier firing rolls back."""
        check = self.spec.checks.error_budget if self.spec.checks else None
        batch = self.obs.counts.get("errorBudget")
        if check is None or batch is None or self.spec.skip_analysis:
            return False
        settings = self.spec.analysis.sequential
        update = update_budget(
            check,
            self.st.budget,
            batch,
            self.elapsed(self.st.rollout_started_at),
            limit_test(settings, split_alpha(self.spec), 0.0),
            self.obs.count_queries.get("errorBudget"),
        )
        self.set(budget=update.status)
        if update.fired is not None:
            self.rollback("AnalysisFailed", "error budget: " + update.status.message)
            return True
        return False

    def report_analysis(self) -> None:
        """One Event per reading of Prometheus: every check's verdict and why."""
        if self.obs.metrics is None and not self.obs.counts:
            return
        judged = self.st.last_analysis_at == self.now and self.obs.metrics is not None
        report = analysis_report(self.st, judged, set(self.obs.counts), self.before.canary_weight)
        event = Notify(EventKind.ANALYSIS, report.reason, report.message, report.warning)
        rollback = next(
            (
                i
                for i, a in enumerate(self.actions)
                if isinstance(a, Notify) and a.event is EventKind.ROLLING_BACK
            ),
            len(self.actions),
        )
        self.actions.insert(rollback, event)  # the analysis, then the decision it led to

    def requirement_failed(self) -> bool:
        """The code this rollout needs was rolled back: roll back with it."""
        req = self.obs.requirement
        if req is None or req.state is not RequirementState.FAILED:
            return False
        self.rollback("RequiredCodeRolledBack", req.message)
        return True

    def requirement_met(self) -> bool:
        """Hold (without a deadline) until the required code is stable."""
        req = self.obs.requirement
        if req is None or req.state is RequirementState.MET:
            return True
        self.waiting_for_requirement = True
        self.note("WaitingForCode", req.message)
        return False

    def begin_traffic(self) -> None:
        if not self.requirement_met():
            return
        if not self.obs.target_ready:
            why = self.obs.target_message or "waiting for the new version to become ready"
            self.note("WaitingForCanary", why)
            return
        if not self.router_confirms:
            self.note("WaitingForRouter", f"the router reads {self.obs.weight}, not 0%")
            return
        if not self.gates_open(GateStage.BEFORE_ROLLOUT):
            return
        self.step_to(1)

    def step_complete(self) -> bool:
        if self.spec.skip_analysis:
            return self.elapsed(self.st.step_started_at) >= self.interval
        return self.st.step_passed_analyses >= self.spec.analysis.analyses_per_step

    def advance(self) -> None:
        if not self.step_complete():
            return
        if not self.router_confirms:
            self.note(
                "WaitingForRouter",
                f"the router reads {self.obs.weight}, not {self.st.canary_weight}%: holding",
            )
            return
        if self.st.step_completed_at is None:
            self.set(step_completed_at=self.now)
        weight = self.st.canary_weight
        if self.plan.has_pause(weight) and not self.approved():
            pause = self.plan.pauses[weight]
            if pause is None:
                self.pause("PausedAtStep", f"paused at {weight}% until resumed")
                return
            if self.elapsed(self.st.step_completed_at) < pause:
                self.note("StepPause", f"holding at {weight}% for {pause:g}s")
                return
        last = self.st.current_step >= len(self.plan.weights)
        missing = unresolved(self.spec, self.st.evidence, skip=set(self.obs.untestable))
        if last and self.tested and missing:
            self.note(
                "WaitingForEvidence",
                f"holding at {weight}% until every test has the sample that resolves its "
                f"limit: {'; '.join(missing)}",
            )
            return
        if last and not self.requirement_met():
            return
        if not self.gates_open(GateStage.BEFORE_PROMOTION if last else GateStage.BEFORE_STEP):
            return
        if last:
            self.promote("AnalysisPassed", f"every step passed up to {weight}%")
        else:
            self.step_to(self.st.current_step + 1)

    def approved(self) -> bool:
        return self.st.approved_gates == str(self.st.current_step)

    def gates_open(self, stage: GateStage) -> bool:
        gates = [g for g in self.spec.gates or () if g.stage is stage]
        manual_ok = self.approved()
        waiting = [
            g.name
            for g in gates
            if not (
                manual_ok
                if g.type is GateType.MANUAL
                else self.obs.gates.get(g.name) is GateState.OPEN
            )
        ]
        self.set(pending_gates=waiting)
        if not waiting:
            return True
        manual = [g.name for g in gates if g.type is GateType.MANUAL and g.name in waiting]
        if manual:
            self.pause(
                "AwaitingApproval", f"waiting for approval of {', '.join(manual)} ({stage.value})"
            )
        else:
            self.note("WaitingForGate", f"waiting for gates {', '.join(waiting)} ({stage.value})")
        return False

    def pause(self, reason: str, message: str) -> None:
        """Wait for a person; notify only when the pause begins."""
        if self.phase is not Phase.PAUSED or self.reason != reason:
            self.notify(EventKind.PAUSED, reason, message)
        self.transition(Phase.PAUSED, reason, message)

    def step_to(self, step: int) -> None:
        weight = self.plan.weight_at(step)
        self.set(
            current_step=step,
            step_started_at=self.now,
            step_completed_at=None,
            step_passed_analyses=0,
            step_samples=0,
            approved_gates=None,
            pending_gates=[],
        )
        self.set_weight(weight)
        message = f"step {step}/{len(self.plan.weights)}: {weight}% of traffic on the new version"
        self.transition(Phase.PROGRESSING, "StepUp", message)
        self.notify(EventKind.STEP, "StepUp", message)

    def check_deadline(self) -> None:
        if self.waiting_for_requirement:  # waiting on another rollout is not a stall of this one
            return
        budget = self.deadline
        pause = self.plan.pauses.get(self.st.canary_weight)
        if pause is not None:
            budget += pause
        spent = self.elapsed(self.st.step_started_at)
        if spent <= budget:
            return
        if self.reason in WAITING_FOR_EVIDENCE and not self.spec.skip_analysis:
            if not (self.reason == "WaitingForEvidence" and self.extended(spent, budget)):
                self.without_evidence()
        else:
            self.rollback(
                "ProgressDeadlineExceeded",
                f"no progress for {self.elapsed(self.st.step_started_at):g}s "
                f"(deadline {self.spec.analysis.progress_deadline}); last: {self.message}",
            )

    def extended(self, spent: float, budget: float) -> bool:
        """Past the progress deadline at the last step: keep waiting for the sample that
        resolves every limit while this step's traffic brings it within the evidence deadline.

        The rate is the step's counted canary requests over the time up to the last reading,
        so that the projection (and status) changes only when counts do.
        """
        limit = budget - self.deadline + seconds(self.spec.analysis.evidence_deadline)
        short = shortfall(self.spec, self.st.evidence, skip=set(self.obs.untestable))
        began, last = self.st.step_started_at, self.st.last_count_at
        counted = (last - began).total_seconds() if began and last else 0.0
        rate = self.st.step_samples / counted if counted > 0 else 0.0
        if short is None or rate <= 0 or spent + short / rate > limit:
            return False
        analysis = self.spec.analysis
        message = (
            f"{self.message}; progressDeadline {analysis.progress_deadline} passed, extended "
            f"up to evidenceDeadline {analysis.evidence_deadline}: about {short:,.0f} more "
            f"canary requests, {short / rate:,.0f}s at {rate:.3g}/s"
        )
        if self.before.reason != "DeadlineExtended":
            self.notify(EventKind.EXTENDED, "DeadlineExtended", message)
        self.note("DeadlineExtended", message)
        return True

    def without_evidence(self) -> None:
        """The deadline passed while the rollout only waited for evidence: the spec decides.

        Not a verdict on the version: the reason says so, and the replay's exit status too.
        """
        seen = sum(e.canary_total for e in self.st.evidence[:1]) or self.st.step_samples
        analysis = self.spec.analysis
        waited = (
            analysis.evidence_deadline
            if self.before.reason == "DeadlineExtended"
            else analysis.progress_deadline
        )
        message = (
            f"no verdict within {waited} at "
            f"{self.st.canary_weight}%: "
            + (
                f"{seen:,.0f} canary requests counted, not enough; "
                if seen
                else "no canary requests counted; "
            )
            + self.message
        )
        policy = self.spec.analysis.without_evidence
        if policy is EvidencePolicy.PROMOTE and self.requirement_met():
            self.promote("PromotedWithoutEvidence", message + " (withoutEvidence: Promote)")
        elif policy is EvidencePolicy.HOLD:
            self.set(paused_by_user=True)
            self.pause(
                "InsufficientEvidence",
                message + " (withoutEvidence: Hold; resume, promote or abort)",
            )
        else:
            self.rollback("InsufficientEvidence", message)

    # -- endings ------------------------------------------------------------------------------

    def rollback(self, reason: str, message: str) -> None:
        self.set_weight(0)
        self.set(pending_gates=[], paused_by_user=False)
        self.transition(Phase.ROLLING_BACK, reason, message)
        self.actions.append(Rollback(self.st.revision or "", reason))
        self.notify(EventKind.ROLLING_BACK, reason, message, warning=True)
        self.rolling_back()

    def rolling_back(self) -> None:
        if self.obs.weight == 0:
            self.transition(Phase.ROLLED_BACK, self.reason, self.message)
            self.notify(EventKind.ROLLED_BACK, self.reason, self.message, warning=True)
        elif not any(isinstance(a, SetWeight) for a in self.actions):
            self.set_weight(0)

    def promote(self, reason: str, message: str) -> None:
        self.set(pending_gates=[], paused_by_user=False, step_started_at=self.now)
        self.transition(Phase.PROMOTING, reason, message)
        self.notify(EventKind.PROMOTING, reason, message)
        self.promoting()

    def promoting(self) -> None:
        rev = self.st.revision or ""
        if self.obs.stable_revision == rev:
            if self.st.canary_weight != 0:
                self.set_weight(0)
            self.set(stable_revision=rev)
            message = f"revision {rev} is now stable"
            self.transition(Phase.SUCCEEDED, "Promoted", message)
            self.notify(EventKind.PROMOTED, "Promoted", message)
        else:
            self.actions.append(Promote(rev))

    # -- result -------------------------------------------------------------------------------

    def reassert_weight(self) -> None:
        """Heal drift: the router disagrees with the weight status says we set."""
        seen = self.obs.weight
        if (
            seen is not None
            and not self.spec.suspend
            and seen != self.st.canary_weight
            and self.phase is not Phase.INITIALIZING
            and not any(isinstance(a, SetWeight) for a in self.actions)
        ):
            self.actions.append(SetWeight(self.st.canary_weight))

    def record_history(self) -> None:
        b, a = self.before, self.st
        if (b.phase, b.canary_weight, b.current_step) == (a.phase, a.canary_weight, a.current_step):
            return
        entry = HistoryEntry(
            time=self.now,
            phase=self.phase,
            weight=a.canary_weight,
            step=a.current_step,
            reason=self.reason or self.phase.value,
            message=self.message,
        )
        self.set(history=[*a.history, entry][-HISTORY_LIMIT:])

    def requeue_after(self) -> float | None:
        if self.phase in TERMINAL_PHASES:
            return None
        if self.phase in ACTIVE_PHASES and self.st.step_started_at is not None:
            start = self.st.step_started_at
            base = max(start, self.st.last_analysis_at or start)
            due = base + timedelta(seconds=self.interval)
            every = counts_every(self.spec)
            if every is not None and every < self.interval:
                counted = max(start, self.st.last_count_at or start)
                due = min(due, counted + timedelta(seconds=every))
            return max(1.0, min(self.interval, (due - self.now).total_seconds()))
        return min(SETTLING_REQUEUE, self.interval)

    def finish(self) -> Decision:
        if self.intent is not None:
            message = (
                f"request {self.intent.kind.value!r} does not apply in phase {self.phase.value}"
            )
            self.notify(EventKind.REQUEST_IGNORED, "RequestIgnored", message, warning=True)
        self.reassert_weight()
        self.record_history()
        self.set(
            observed_generation=self.generation,
            conditions=conditions_for(self.st, self.generation, self.now),
        )
        return Decision(
            actions=tuple(self.actions),
            status=self.st,
            requeue_after=self.requeue_after(),
            reason=self.reason or self.phase.value,
            message=self.message,
        )
