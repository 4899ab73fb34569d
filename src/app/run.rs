//! What one run (sweep, tick, event, command) has done so far, shared by the identities the run
//! works on concurrently. Locks are held only for bookkeeping, never across an await.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::warn;

use crate::domain::security_hub::{HubFindingRef, HubReport, FINDINGS_PER_CALL};
use crate::domain::{
    decide, AuditEntry, Budget, Decision, Facts, Gate, OutboundEvent, Outcome, Policy, Principal,
    PrincipalKind, Record, Scope, Stage, Step, Subject, Timestamp,
};

use super::deadline::{Deadline, Pace};
use super::output::{ActionReport, RunReport};
use super::progress::Progress;

/// `PutEvents` takes at most 10 entries per call.
pub(crate) const EVENTS_PER_CALL: usize = 10;
/// `BatchWriteItem` takes at most 25 items per call.
pub(crate) const AUDITS_PER_CALL: usize = 25;
/// A sweep's notices committed together: 25 done entries and records fill two `BatchWriteItem`s.
pub(crate) const NOTICES_PER_COMMIT: usize = AUDITS_PER_CALL;

/// A notice whose effects are done and whose intent this run holds, waiting to be committed with
/// others (docs/design.md, 'Batched notices').
pub(crate) struct QueuedNotice {
    /// The stage the subject was in before the notice.
    pub(crate) before: Stage,
    /// The record to commit, with the intent's version.
    pub(crate) after: Record,
    pub(crate) done: AuditEntry,
    pub(crate) reason: String,
    /// The end of its intent's lease: a commit without a condition is safe only well before.
    pub(crate) held_until: Timestamp,
}

pub(crate) struct Run {
    pub(crate) event_id: Option<String>,
    /// The run's `now` (owner messages are sent at the end with it).
    pub(crate) now: Option<Timestamp>,
    /// Appended to every audit reason of this run (see `Nomination::note`).
    note: Option<String>,
    /// The Security Hub finding that nominated this run's principal.
    origin: Option<Origin>,
    /// `Some` when the run has a deadline: whether another identity may start.
    pace: Option<Pace>,
    /// Where identities done and steps taken are told, if anywhere.
    progress: Option<std::sync::Arc<dyn Progress>>,
    /// A fleet run over several accounts sends the owner messages of all of them at its end
    /// (one digest per recipient): this account's run leaves its own queued.
    pub(crate) messages_left_to_fleet: bool,
    state: Mutex<RunState>,
}

/// What a Security Hub finding nominated: the principal, narrowed to one credential or not.
pub(crate) struct Origin {
    pub(crate) kind: PrincipalKind,
    pub(crate) name: String,
    pub(crate) scope: Option<Scope>,
    pub(crate) finding: HubFindingRef,
}

pub(crate) struct RunState {
    pub(crate) budget: Budget,
    pub(crate) report: RunReport,
    /// Step events not yet published (sent in batches of [`EVENTS_PER_CALL`]).
    pub(crate) events: Vec<OutboundEvent>,
    /// Dry-run audit entries not yet written (in batches of [`AUDITS_PER_CALL`]); they record
    /// what would have happened, so nothing depends on their order with other writes.
    pub(crate) audits: Vec<(Subject, AuditEntry)>,
    /// Security Hub reports not yet sent (in batches of [`FINDINGS_PER_CALL`]).
    pub(crate) hub: Vec<HubReport>,
    /// Notices done but not yet committed (in batches of [`NOTICES_PER_COMMIT`]).
    pub(crate) notices: Vec<QueuedNotice>,
    /// Whether notices are committed in batches: in a sweep pass, not in a one-identity run.
    pub(crate) batch_notices: bool,
    /// Tags of the principals read in this run, by ARN: who owns an identity after its step
    /// (a deleted one cannot be read again).
    pub(crate) tags: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
    /// Users a subject of which left dormant's ladder in this run (by ARN): their credentials
    /// marker is decided again once the run's steps are done (`engine/marker.rs`).
    pub(crate) ladders_ended: std::collections::BTreeMap<String, Principal>,
}

impl Run {
    pub(crate) fn new(budget: Budget, event_id: Option<String>) -> Self {
        Run {
            event_id,
            now: None,
            note: None,
            origin: None,
            pace: None,
            progress: super::progress::current(),
            messages_left_to_fleet: false,
            state: Mutex::new(RunState {
                budget,
                report: RunReport::default(),
                events: Vec::new(),
                audits: Vec::new(),
                hub: Vec::new(),
                notices: Vec::new(),
                batch_notices: false,
                tags: std::collections::HashMap::new(),
                ladders_ended: std::collections::BTreeMap::new(),
            }),
        }
    }

    pub(crate) fn at(mut self, now: Timestamp) -> Self {
        self.now = Some(now);
        self
    }

    /// Remembers the tags of a principal read in this run.
    pub(crate) fn remember_tags(&self, facts: &Facts) {
        self.state()
            .tags
            .insert(facts.principal.arn(), facts.tags.clone());
    }

    /// The tags of a principal read in this run.
    pub(crate) fn tags_of(&self, arn: &str) -> Option<std::collections::BTreeMap<String, String>> {
        self.state().tags.get(arn).cloned()
    }

    /// Notes that a subject of `principal` left dormant's ladder in this run (users only).
    pub(crate) fn ladder_ended(&self, principal: &Principal) {
        if principal.kind == PrincipalKind::User {
            self.state()
                .ladders_ended
                .insert(principal.arn(), principal.clone());
        }
    }

    pub(crate) fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    pub(crate) fn with_origin(mut self, origin: Option<Origin>) -> Self {
        self.origin = origin;
        self
    }

    /// The Security Hub finding that nominated `subject`: a finding about a principal covers
    /// its credentials, one about a credential only that credential.
    pub(crate) fn nominating_finding(&self, subject: &Subject) -> Option<&HubFindingRef> {
        let o = self.origin.as_ref()?;
        let p = &subject.principal;
        let covers = p.kind == o.kind
            && p.name == o.name
            && o.scope.as_ref().is_none_or(|s| *s == subject.scope);
        covers.then_some(&o.finding)
    }

    /// Queues a Security Hub report; returns a full batch to send when there is one.
    pub(crate) fn queue_hub(&self, report: HubReport) -> Option<Vec<HubReport>> {
        let mut state = self.state();
        state.hub.push(report);
        (state.hub.len() >= FINDINGS_PER_CALL).then(|| std::mem::take(&mut state.hub))
    }

    /// Commits this run's notices in batches from now on (a sweep pass).
    pub(crate) fn batch_notices(&self) {
        self.state().batch_notices = true;
    }

    /// From now on every notice commits at once (the run is finishing).
    pub(crate) fn stop_batching_notices(&self) {
        self.state().batch_notices = false;
    }

    pub(crate) fn batches_notices(&self) -> bool {
        self.state().batch_notices
    }

    /// Queues a done notice; returns a full batch to commit when there is one.
    pub(crate) fn queue_notice(&self, notice: QueuedNotice) -> Option<Vec<QueuedNotice>> {
        let mut state = self.state();
        state.notices.push(notice);
        (state.notices.len() >= NOTICES_PER_COMMIT).then(|| std::mem::take(&mut state.notices))
    }

    /// The notices still waiting to be committed.
    pub(crate) fn drain_notices(&self) -> Vec<QueuedNotice> {
        std::mem::take(&mut self.state().notices)
    }

    /// The Security Hub reports still queued.
    pub(crate) fn drain_hub(&self) -> Vec<HubReport> {
        std::mem::take(&mut self.state().hub)
    }

    pub(crate) fn with_deadline(mut self, deadline: Option<Deadline>) -> Self {
        self.pace = deadline.map(Pace::new);
        self
    }

    /// Whether another identity may start: always without a deadline; with one, while the
    /// slowest recent identity would still finish twice over.
    pub(crate) fn may_start(&self) -> bool {
        self.pace.as_ref().is_none_or(Pace::may_start)
    }

    /// One identity is done, in `time` (for [`may_start`](Self::may_start) and the progress).
    pub(crate) fn identity_done(&self, time: std::time::Duration) {
        if let Some(p) = &self.pace {
            p.took(time);
        }
        if let Some(p) = &self.progress {
            p.identity_done();
        }
    }

    /// `n` identities to go through, for the progress.
    pub(crate) fn add_total(&self, n: usize) {
        if let Some(p) = &self.progress {
            p.add_total(n);
        }
    }

    /// `reason`, with what the nominating source observed.
    pub(crate) fn with_note_on(&self, reason: &str) -> String {
        match &self.note {
            Some(note) => format!("{reason}; {note}"),
            None => reason.to_string(),
        }
    }

    /// The state, for a short bookkeeping change. A panic elsewhere cannot leave it half-changed
    /// in a way that matters (every change is a push or a counter), so poisoning is ignored.
    pub(crate) fn state(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides under the lock and, when the step will be taken (or would be, in a dry run),
    /// counts it against the budget at once: two identities decided at the same time cannot
    /// both take the last step the breaker allows.
    pub(crate) fn decide(
        &self,
        record: &Record,
        facts: Option<&Facts>,
        policy: &Policy,
        now: Timestamp,
    ) -> Decision {
        let mut state = self.state();
        let decision = decide(record, facts, policy, &state.budget, now);
        if let Some(planned) = decision.planned() {
            if matches!(planned.gate, Gate::Proceed | Gate::DryRun) {
                state.budget.record(planned.step);
            }
        }
        if let Some(warning) = decision.exemption.as_ref().and_then(|e| e.warning()) {
            warn!(identity = %record.subject, %warning, "exemption tags need fixing; the exemption holds");
        }
        decision
    }

    pub(crate) fn report(&self, subject: &Subject, step: Step, outcome: Outcome, reason: &str) {
        if let (Outcome::Done, Some(p)) = (outcome, &self.progress) {
            p.step_taken();
        }
        self.state().report.actions.push(ActionReport {
            identity: subject.id(),
            step,
            outcome,
            reason: reason.to_string(),
        });
    }

    pub(crate) fn count_evaluated(&self, n: usize) {
        self.state().report.evaluated += n;
    }

    /// Queues an event; returns a full batch to publish when there is one.
    pub(crate) fn queue_event(&self, event: OutboundEvent) -> Option<Vec<OutboundEvent>> {
        let mut state = self.state();
        state.events.push(event);
        (state.events.len() >= EVENTS_PER_CALL).then(|| std::mem::take(&mut state.events))
    }

    /// Queues a dry-run audit entry; returns a full batch to write when there is one.
    pub(crate) fn queue_audit(
        &self,
        subject: &Subject,
        entry: AuditEntry,
    ) -> Option<Vec<(Subject, AuditEntry)>> {
        let mut state = self.state();
        state.audits.push((subject.clone(), entry));
        (state.audits.len() >= AUDITS_PER_CALL).then(|| std::mem::take(&mut state.audits))
    }

    /// Everything still queued.
    pub(crate) fn drain(&self) -> (Vec<OutboundEvent>, Vec<(Subject, AuditEntry)>) {
        let mut state = self.state();
        (
            std::mem::take(&mut state.events),
            std::mem::take(&mut state.audits),
        )
    }

    pub(crate) fn into_report(self) -> RunReport {
        let mut report = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .report;
        // Identities are worked on concurrently; a stable order keeps output diffable.
        report.actions.sort_by(|a, b| a.identity.cmp(&b.identity));
        report
    }
}
