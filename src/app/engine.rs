//! The engine: load → re-read facts → exemptions → decide → write intent → execute → commit →
//! audit. It never acts on bulk facts: any step is preceded by a fresh read of that principal.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use std::sync::Arc;

use tracing::{info, warn};

use crate::domain::event::REMEDIATION_FAILED;
use crate::domain::facts::fmt_time;
use crate::domain::fallback::automation_for;
use crate::domain::ladder::{INTENT_LEASE, RECREATED};
use crate::domain::AutomationStatus;
use crate::domain::OutboundEvent;
use crate::domain::{
    decide, dormant_subjects, AuditEntry, Budget, Decision, Effect, Facts, Gate, Intent, Outcome,
    Policy, Principal, PrincipalKind, Record, Scope, Stage, Step, Subject, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{AccessAdvisor, ErrorKind, Fallback, Iam, PortError, Publisher, Store};

use super::output::RunReport;
use super::run::Run;

/// Who the audit trail names for the controller's own steps.
pub const CONTROLLER: &str = "controller";

/// The ports and policy for one account.
pub struct Engine<I, S> {
    pub iam: I,
    pub store: S,
    pub policy: Policy,
    /// `controller`, or the operator's ARN for CLI commands.
    pub actor: String,
    /// Where step events go; `None` publishes nothing (local runs without a bus).
    pub publisher: Option<Arc<dyn Publisher>>,
    /// SSM Automation, for steps the controller cannot (or is configured not to) take directly.
    pub fallback: Option<FallbackSetup>,
    /// How many identities of the account are worked on at once.
    pub concurrency: usize,
    /// IAM Access Advisor, asked before access-cutting steps when
    /// `inactivity.confirm_with_access_advisor` is on.
    pub advisor: Option<Arc<dyn AccessAdvisor>>,
}

/// What an event nominated, for [`Engine::evaluate_nominated`].
#[derive(Debug, Clone)]
pub struct Nomination<'a> {
    pub kind: PrincipalKind,
    pub name: &'a str,
    /// A credential-level finding names one key or the password: only that credential is newly
    /// put on the ladder (the whole principal and what is already tracked are judged as always).
    pub scope: Option<Scope>,
    pub event_id: Option<&'a str>,
    /// What the source observed (e.g. Access Analyzer's last access), added to the audit entries
    /// of this run. Information only: the decision rests on IAM.
    pub note: Option<String>,
}

/// What Access Advisor said before an access-cutting step.
enum Confirmation {
    /// Not asked: the switch is off, or the step does not cut a whole principal's access.
    NotNeeded,
    /// Asked, and not answered: the failure is recorded and the step waits.
    Unavailable,
    /// The facts with Access Advisor's latest `LastAuthenticated`, and that date in words.
    Seen(Box<Facts>, String),
}

/// Identities worked on at once by default: enough to hide IAM's latency, few enough to stay
/// clear of its rate limits (throttling is retried with backoff anyway).
pub const DEFAULT_IDENTITY_CONCURRENCY: usize = 8;

/// The SSM fallback: the port, the role the documents run as, and the steps always run there.
#[derive(Clone)]
pub struct FallbackSetup {
    pub runner: Arc<dyn Fallback>,
    pub automation_role: String,
    pub always: Vec<Step>,
}

/// How long an Automation execution may run before it counts as failed.
const FALLBACK_TIMEOUT: chrono::Duration = chrono::Duration::hours(24);

impl<I: Iam, S: Store> Engine<I, S> {
    pub fn new(iam: I, store: S, policy: Policy, actor: impl Into<String>) -> Self {
        Engine {
            iam,
            store,
            policy,
            actor: actor.into(),
            publisher: None,
            fallback: None,
            concurrency: DEFAULT_IDENTITY_CONCURRENCY,
            advisor: None,
        }
    }

    pub fn with_advisor(mut self, advisor: Arc<dyn AccessAdvisor>) -> Self {
        self.advisor = Some(advisor);
        self
    }

    pub fn with_concurrency(mut self, identities: usize) -> Self {
        self.concurrency = identities.max(1);
        self
    }

    pub fn with_fallback(mut self, fallback: FallbackSetup) -> Self {
        self.fallback = Some(fallback);
        self
    }

    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Publishes dormant's own events at once. A failure is logged and never undoes a committed
    /// step.
    pub(crate) async fn publish(&self, events: Vec<OutboundEvent>) {
        let Some(p) = &self.publisher else { return };
        if events.is_empty() {
            return;
        }
        if let Err(e) = p.publish(&events).await {
            warn!(error = %e, events = events.len(), "could not publish dormant events; the steps stand");
        }
    }

    /// Queues a step event for the run; a full batch goes out at once, the rest in `finish`.
    pub(crate) async fn emit(&self, run: &Run, event: OutboundEvent) {
        if let Some(batch) = run.queue_event(event) {
            self.publish(batch).await;
        }
    }

    /// Publishes what is still queued and writes the queued dry-run audit entries. Every run
    /// ends here, also when it failed half-way, so nothing queued is dropped.
    pub(crate) async fn finish(&self, run: Run) -> Result<RunReport> {
        let (events, audits) = run.drain();
        self.publish(events).await;
        self.store.append_audits(&audits).await?;
        Ok(run.into_report())
    }

    pub fn account(&self) -> &str {
        self.iam.account()
    }

    pub(crate) async fn start_run(&self, event_id: Option<&str>, now: Timestamp) -> Result<Run> {
        let breaker = self.store.breaker(self.account()).await?;
        let budget = Budget {
            tripped: breaker.tripped,
            actions_this_run: 0,
            quarantines_in_window: breaker.quarantines_within_day(now),
            identities_in_account: breaker.identities,
        };
        Ok(Run::new(budget, breaker, event_id.map(str::to_string)))
    }

    /// Saves the run's breaker state. Serialised, so a save never overwrites a newer one.
    async fn save_breaker(&self, run: &Run) -> Result<()> {
        let _turn = run.breaker_save.lock().await;
        let state = run.state().breaker.clone();
        self.store.save_breaker(self.account(), &state).await?;
        Ok(())
    }

    /// Evaluates every identity in the account and takes whatever step is due.
    pub async fn sweep(&self, now: Timestamp) -> Result<RunReport> {
        let run = self.start_run(None, now).await?;
        let result = self.sweep_with(&run, now).await;
        let report = self.finish(run).await;
        result.and(report)
    }

    async fn sweep_with(&self, run: &Run, now: Timestamp) -> Result<()> {
        let bulk = self.iam.bulk_facts().await?;
        let identities = u32::try_from(bulk.len()).unwrap_or(u32::MAX);
        {
            let mut state = run.state();
            state.budget.identities_in_account = identities;
            state.breaker.identities = identities;
        }
        info!(
            account = self.account(),
            identities, "sweep: read IAM in bulk"
        );

        let mut tracked: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in self.store.list(self.account(), None).await? {
            tracked
                .entry(r.subject.principal.arn())
                .or_default()
                .push(r);
        }
        let work: Vec<(Facts, Vec<Record>)> = bulk
            .into_iter()
            .map(|facts| {
                let records = tracked.remove(&facts.principal.arn()).unwrap_or_default();
                (facts, records)
            })
            .collect();
        let total = work.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        // Identities are independent; the run's budget is shared and checked under its lock.
        futures::stream::iter(work)
            .for_each_concurrent(self.concurrency, |(facts, records)| {
                let done = &done;
                async move {
                    if let Err(e) = self.sweep_principal(run, &facts, records, now).await {
                        self.record_failure(
                            run,
                            &Subject::whole(facts.principal.clone()),
                            None,
                            &e,
                        );
                    }
                    run.count_evaluated(1);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n.is_multiple_of(1000) {
                        info!(done = n, of = total, "sweep progress");
                    }
                }
            })
            .await;
        // Tracked principals the bulk listing did not show: look before concluding they are gone
        // (a listing can end early).
        for records in tracked.into_values() {
            let live: Vec<Record> = records
                .into_iter()
                .filter(|r| r.stage != Stage::Deleted)
                .collect();
            let Some(first) = live.first() else { continue };
            run.count_evaluated(1);
            let principal = first.subject.principal.clone();
            if let Err(e) = self.sweep_fresh(run, &principal, live, now).await {
                self.record_failure(run, &Subject::whole(principal), None, &e);
            }
        }
        if !self.policy.dry_run {
            self.save_breaker(run).await?;
        }
        Ok(())
    }

    /// One principal of a sweep, decided on the bulk read where that is safe: a notice only
    /// tags, on facts read moments ago in this run (a stale fact is corrected by the release
    /// rule). Anything else (a later step, a stage change of a tracked identity) is decided
    /// again on a fresh read of the principal. Bulk facts name keys by report slot; one
    /// `ListAccessKeys` gives them ids where acting, or matching tracked keys, needs them.
    async fn sweep_principal(
        &self,
        run: &Run,
        bulk: &Facts,
        records: Vec<Record>,
        now: Timestamp,
    ) -> Result<()> {
        let is_key = |s: &Subject| matches!(s.scope, Scope::AccessKey(_));
        let tracks_keys = records
            .iter()
            .any(|r| r.stage != Stage::Deleted && is_key(&r.subject));
        let key_candidates = dormant_subjects(bulk, &self.policy, now).iter().any(is_key);
        let mut facts = bulk.clone();
        if facts.has_slot_keys() && (tracks_keys || (key_candidates && !self.policy.dry_run)) {
            let listed = self.iam.access_keys(&facts.principal.name).await?;
            match facts.with_key_ids(&listed) {
                Some(with_ids) => facts = with_ids,
                None => return self.sweep_fresh(run, &bulk.principal, records, now).await,
            }
        }
        let bulk_will_do = self
            .subjects(&facts, &records, None, now)
            .iter()
            .all(|subject| {
                let record = record_for(&records, subject);
                let d = decide(
                    &record,
                    Some(&facts),
                    &self.policy,
                    &run.state().budget,
                    now,
                );
                match d.step {
                    Some(step) => step == Step::Notice,
                    None => d.after.is_none(),
                }
            });
        if bulk_will_do {
            self.evaluate_fresh(run, Some(facts), records, None, now)
                .await
        } else {
            self.sweep_fresh(run, &bulk.principal, records, now).await
        }
    }

    /// Reads one principal afresh and decides for it and its tracked records.
    async fn sweep_fresh(
        &self,
        run: &Run,
        principal: &Principal,
        records: Vec<Record>,
        now: Timestamp,
    ) -> Result<()> {
        let fresh = self
            .iam
            .fresh_facts(principal.kind, &principal.name)
            .await?;
        self.evaluate_fresh(run, fresh, records, None, now).await
    }

    /// Every subject to decide for: the tracked ones, the whole principal and each credential
    /// these facts show dormant (with `only`, of the untracked credentials just that one).
    fn subjects(
        &self,
        facts: &Facts,
        records: &[Record],
        only: Option<&Scope>,
        now: Timestamp,
    ) -> BTreeSet<Subject> {
        let mut subjects: BTreeSet<Subject> = records.iter().map(|r| r.subject.clone()).collect();
        subjects.insert(Subject::whole(facts.principal.clone()));
        subjects.extend(
            dormant_subjects(facts, &self.policy, now)
                .into_iter()
                .filter(|s| only.is_none_or(|o| s.scope == Scope::Whole || s.scope == *o)),
        );
        subjects
    }

    /// Decides for the whole principal and each of its credentials on these facts (a fresh read,
    /// or the sweep's bulk read where that is enough; see `sweep_principal`).
    async fn evaluate_fresh(
        &self,
        run: &Run,
        fresh: Option<Facts>,
        records: Vec<Record>,
        only: Option<&Scope>,
        now: Timestamp,
    ) -> Result<()> {
        let subjects = match &fresh {
            Some(f) => self.subjects(f, &records, only, now),
            None => records.iter().map(|r| r.subject.clone()).collect(),
        };
        for subject in subjects {
            let record = record_for(&records, &subject);
            if let Err(e) = self.process(run, record, fresh.as_ref(), now).await {
                self.record_failure(run, &subject, None, &e);
            }
        }
        Ok(())
    }

    /// Takes the steps that are due, re-reading only those identities (the sparse due index).
    pub async fn tick(&self, now: Timestamp) -> Result<RunReport> {
        let run = self.start_run(None, now).await?;
        let result = self.tick_with(&run, now).await;
        let report = self.finish(run).await;
        result.and(report)
    }

    async fn tick_with(&self, run: &Run, now: Timestamp) -> Result<()> {
        let due = self.store.due(self.account(), now).await?;
        info!(account = self.account(), due = due.len(), "tick");
        futures::stream::iter(due)
            .for_each_concurrent(self.concurrency, |record| async move {
                run.count_evaluated(1);
                let subject = record.subject.clone();
                let result = async {
                    let fresh = self
                        .iam
                        .fresh_facts(subject.principal.kind, &subject.principal.name)
                        .await?;
                    self.process(run, record, fresh.as_ref(), now).await
                }
                .await;
                if let Err(e) = result {
                    self.record_failure(run, &subject, None, &e);
                }
            })
            .await;
        Ok(())
    }

    /// Evaluates one principal now (an event nominated it, or an operator asked).
    pub async fn evaluate(
        &self,
        kind: PrincipalKind,
        name: &str,
        event_id: Option<&str>,
        now: Timestamp,
    ) -> Result<RunReport> {
        self.evaluate_nominated(
            Nomination {
                kind,
                name,
                scope: None,
                event_id,
                note: None,
            },
            now,
        )
        .await
    }

    /// Evaluates what an event nominated: the principal, narrowed to one credential when the
    /// finding names one.
    pub async fn evaluate_nominated(
        &self,
        nomination: Nomination<'_>,
        now: Timestamp,
    ) -> Result<RunReport> {
        let run = self.start_run(nomination.event_id, now).await?;
        let run = run.with_note(nomination.note.clone());
        let result = self.evaluate_with(&run, &nomination, now).await;
        let report = self.finish(run).await;
        result.and(report)
    }

    async fn evaluate_with(
        &self,
        run: &Run,
        nomination: &Nomination<'_>,
        now: Timestamp,
    ) -> Result<()> {
        // The whole principal is what a scope-less nomination names.
        let scope = nomination.scope.clone().filter(|s| *s != Scope::Whole);
        let name = nomination.name;
        let fresh = self.iam.fresh_facts(nomination.kind, name).await?;
        let Some(facts) = &fresh else {
            info!(%name, "identity no longer exists; nothing to do");
            return Ok(());
        };
        let records = self.store.load_principal(&facts.principal).await?;
        run.count_evaluated(1);
        let nominated = Subject {
            principal: facts.principal.clone(),
            scope: scope.clone().unwrap_or(Scope::Whole),
        };
        self.evaluate_fresh(run, fresh.clone(), records, scope.as_ref(), now)
            .await?;
        // An event only nominates: when IAM says otherwise, say why nothing happened.
        let quiet = run.state().report.actions.is_empty();
        if let (Some(event_id), true) = (run.event_id.as_deref(), quiet) {
            let record = self
                .store
                .load(&nominated)
                .await?
                .unwrap_or_else(|| Record::new(nominated.clone()));
            let d = decide(
                &record,
                fresh.as_ref(),
                &self.policy,
                &run.state().budget,
                now,
            );
            let reason = format!("event {event_id} nominated it; no action: {}", d.reason);
            info!(identity = %nominated, %reason, "re-verified");
            self.report(run, &nominated, Step::Notice, Outcome::Skipped, &reason);
            if !self.policy.dry_run {
                self.audit(&nominated, "notice", Outcome::Skipped, &reason, run, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Decides for one subject and carries the decision out. On a lost race, re-reads and
    /// decides once more.
    async fn process(
        &self,
        run: &Run,
        record: Record,
        facts: Option<&Facts>,
        now: Timestamp,
    ) -> Result<()> {
        if record
            .pending
            .as_ref()
            .is_some_and(|i| !i.fallback.is_empty())
        {
            return self.poll_fallback(run, record, now).await;
        }
        let Some(d) = self.decide_confirmed(run, &record, facts, now).await? else {
            return Ok(());
        };
        match self.carry_out(run, record.clone(), d, now).await {
            Err(Error::Port(e)) if e.kind == ErrorKind::Conflict => {
                let Some(current) = self.store.load(&record.subject).await? else {
                    return Ok(());
                };
                info!(identity = %record.subject, "another run changed this identity first; deciding again");
                let Some(d) = self.decide_confirmed(run, &current, facts, now).await? else {
                    return Ok(());
                };
                match self.carry_out(run, current, d, now).await {
                    Err(Error::Port(e)) if e.kind == ErrorKind::Conflict => {
                        self.report(
                            run,
                            &record.subject,
                            Step::Notice,
                            Outcome::Skipped,
                            "changed concurrently by another run; left to it",
                        );
                        Ok(())
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Decides (taking the step's share of the run's budget). With
    /// `inactivity.confirm_with_access_advisor`, a step that would cut a whole principal's access
    /// is decided on facts that include Access Advisor's latest `LastAuthenticated`: a later date
    /// than IAM's counts as use. `None` when no confirmation could be had: the failure is
    /// recorded and the step is not taken this run (fail safe: a role used through a path IAM's
    /// last-used date misses must not be cut off because Access Advisor was unavailable).
    async fn decide_confirmed(
        &self,
        run: &Run,
        record: &Record,
        facts: Option<&Facts>,
        now: Timestamp,
    ) -> Result<Option<Decision>> {
        let look = decide(record, facts, &self.policy, &run.state().budget, now);
        match self.confirm(run, record, facts, &look, now).await? {
            Confirmation::NotNeeded => Ok(Some(run.decide(record, facts, &self.policy, now))),
            Confirmation::Unavailable => Ok(None),
            Confirmation::Seen(confirmed, seen) => {
                let mut d = run.decide(record, Some(&confirmed), &self.policy, now);
                if d.step == look.step {
                    d.reason = format!("{}; Access Advisor: {seen}", d.reason);
                } else {
                    info!(identity = %record.subject, reason = %d.reason, "Access Advisor shows later use; step not taken");
                }
                Ok(Some(d))
            }
        }
    }

    async fn confirm(
        &self,
        run: &Run,
        record: &Record,
        facts: Option<&Facts>,
        look: &Decision,
        now: Timestamp,
    ) -> Result<Confirmation> {
        let (Some(step), Some(facts)) = (look.step, facts) else {
            return Ok(Confirmation::NotNeeded);
        };
        // Access Advisor reports per principal, not per credential, so it cannot speak for one
        // key or the password; a resumed intent is finished whatever it says; a step the breaker
        // stops needs no confirmation.
        if !self.policy.inactivity.confirm_with_access_advisor
            || !step.cuts_access()
            || record.subject.scope != Scope::Whole
            || record.pending.is_some()
            || matches!(look.gate, Gate::Breaker(_))
        {
            return Ok(Confirmation::NotNeeded);
        }
        let answer = match &self.advisor {
            Some(advisor) => advisor.last_authenticated(&facts.principal).await,
            None => Err(PortError::new(
                ErrorKind::Permanent,
                "GenerateServiceLastAccessedDetails",
                "no Access Advisor client is configured",
            )),
        };
        match answer {
            Ok(latest) => {
                let mut confirmed = facts.clone();
                confirmed.advisor_last_used = latest;
                let seen = match latest {
                    Some(t) => format!("last authenticated {}", fmt_time(t)),
                    None => "no service authenticated to in its tracking period".to_string(),
                };
                Ok(Confirmation::Seen(Box::new(confirmed), seen))
            }
            Err(e) => {
                self.confirmation_failed(run, record, step, &e, now).await?;
                Ok(Confirmation::Unavailable)
            }
        }
    }

    async fn confirmation_failed(
        &self,
        run: &Run,
        record: &Record,
        step: Step,
        e: &PortError,
        now: Timestamp,
    ) -> Result<()> {
        let subject = &record.subject;
        let reason = format!(
            "{step} not taken: Access Advisor could not confirm the identity is unused ({e}); trying again on the next run"
        );
        warn!(identity = %subject, %step, error = %e, "Access Advisor confirmation failed");
        self.report(run, subject, step, Outcome::Failed, &reason);
        if self.policy.dry_run {
            return Ok(());
        }
        self.audit(subject, step.as_str(), Outcome::Failed, &reason, run, now)
            .await?;
        self.emit(
            run,
            OutboundEvent::for_record(REMEDIATION_FAILED, record, &reason),
        )
        .await;
        Ok(())
    }

    fn report(&self, run: &Run, subject: &Subject, step: Step, outcome: Outcome, reason: &str) {
        run.report(subject, step, outcome, reason);
    }

    fn record_failure(&self, run: &Run, subject: &Subject, step: Option<Step>, e: &Error) {
        warn!(identity = %subject, error = %e, "evaluation failed");
        self.report(
            run,
            subject,
            step.unwrap_or(Step::Notice),
            Outcome::Failed,
            &e.to_string(),
        );
    }

    pub(crate) async fn audit(
        &self,
        subject: &Subject,
        step: &str,
        outcome: Outcome,
        reason: &str,
        run: &Run,
        now: Timestamp,
    ) -> Result<()> {
        let entry = AuditEntry {
            at: now,
            step: step.to_string(),
            outcome,
            actor: self.actor.clone(),
            reason: run.with_note_on(reason),
            event_id: run.event_id.clone(),
        };
        if outcome == Outcome::DryRun {
            // Notes of what would happen: written in batches, at the latest when the run ends.
            if let Some(batch) = run.queue_audit(subject, entry) {
                self.store.append_audits(&batch).await?;
            }
            return Ok(());
        }
        self.store.append_audit(subject, &entry).await?;
        Ok(())
    }

    /// Applies a decision: nothing, a bookkeeping write, a dry-run note, a breaker stop, or a step.
    pub(crate) async fn carry_out(
        &self,
        run: &Run,
        record: Record,
        d: Decision,
        now: Timestamp,
    ) -> Result<()> {
        let subject = record.subject.clone();
        let Some(step) = d.step else {
            if let Some(after) = d.after {
                if self.policy.dry_run {
                    return Ok(());
                }
                let what = match after.stage {
                    Stage::Clean if after.reason.starts_with(RECREATED) => "recreated",
                    Stage::Exempt | Stage::Clean => "exempt",
                    _ => "delete",
                };
                info!(identity = %subject, stage = %after.stage, reason = %after.reason, "state updated");
                self.store.save(&after).await?;
                self.audit(&subject, what, Outcome::Skipped, &after.reason, run, now)
                    .await?;
            }
            return Ok(());
        };
        match d.gate {
            Gate::DryRun => {
                info!(identity = %subject, %step, reason = %d.reason, "dry run: would act");
                self.report(run, &subject, step, Outcome::DryRun, &d.reason);
                self.audit(
                    &subject,
                    step.as_str(),
                    Outcome::DryRun,
                    &d.reason,
                    run,
                    now,
                )
                .await
            }
            Gate::Breaker(trip) => {
                warn!(identity = %subject, %step, cause = %trip.cause, "circuit breaker stops the step");
                {
                    let mut state = run.state();
                    state.budget.tripped = true;
                    state.report.breaker_tripped = true;
                }
                self.report(run, &subject, step, Outcome::Skipped, &trip.cause);
                if self.policy.dry_run {
                    return Ok(());
                }
                if trip.newly_tripped {
                    {
                        let mut state = run.state();
                        state.breaker.tripped = true;
                        state.breaker.tripped_at = Some(now);
                        state.breaker.cause = Some(trip.cause.clone());
                    }
                    self.save_breaker(run).await?;
                    warn!(account = self.account(), cause = %trip.cause, "circuit breaker tripped");
                    self.publish(vec![OutboundEvent::breaker_tripped(
                        self.account(),
                        &trip.cause,
                        now,
                    )])
                    .await;
                }
                self.audit(
                    &subject,
                    step.as_str(),
                    Outcome::Skipped,
                    &trip.cause,
                    run,
                    now,
                )
                .await
            }
            Gate::Proceed => self.execute(run, record, step, d, now).await,
        }
    }

    async fn execute(
        &self,
        run: &Run,
        record: Record,
        step: Step,
        d: Decision,
        now: Timestamp,
    ) -> Result<()> {
        let subject = record.subject.clone();
        let Some(mut after) = d.after else {
            return Err(Error::Port(PortError::new(
                ErrorKind::Permanent,
                "decide",
                "a step without a resulting state",
            )));
        };
        // Write-ahead intent: from here a crash leaves a record of what remains to be done.
        let mut version = record.version;
        let resuming = record
            .pending
            .as_ref()
            .is_some_and(|i| i.step == step && i.effects == d.effects);
        if !resuming {
            let mut with_intent = record.clone();
            with_intent.pending = Some(Intent {
                step,
                started_at: now,
                effects: d.effects.clone(),
                after: Box::new(after.clone()),
                fallback: Vec::new(),
            });
            with_intent.next_step = Some(step);
            // If this run dies, the due index hands the intent to the first tick after the lease.
            with_intent.next_due_at = Some(now + INTENT_LEASE);
            with_intent.version = record.version;
            version = self.store.save(&with_intent).await?;
        }
        let via_ssm = self
            .fallback
            .as_ref()
            .is_some_and(|f| f.always.contains(&step));
        let started_at = record
            .pending
            .as_ref()
            .filter(|_| resuming)
            .map_or(now, |i| i.started_at);
        for effect in &d.effects {
            // A resumed delete keeps the snapshot taken before its teardown began: a second one
            // would capture a half-torn-down identity (or fail on one already gone).
            if resuming && *effect == Effect::TakeSnapshot {
                let kept = self.store.latest_snapshot(&subject).await?;
                if kept.is_some_and(|s| s.taken_at >= started_at) {
                    continue;
                }
            }
            // Snapshots are reads the controller always takes itself.
            let result = if via_ssm && *effect != Effect::TakeSnapshot {
                Err(PortError::new(
                    ErrorKind::AccessDenied,
                    "fallback",
                    format!("{step} is configured to run through SSM (fallback.ssm_steps)"),
                ))
            } else {
                self.apply(&subject, effect, now).await
            };
            if let Err(e) = result {
                if resuming && *effect == Effect::TakeSnapshot && e.kind == ErrorKind::NotFound {
                    warn!(identity = %subject, "resumed delete: the identity is already gone and no snapshot was kept");
                    continue;
                }
                if e.kind == ErrorKind::AccessDenied {
                    if let Some(started) = self
                        .start_fallback(run, &record, step, &d.effects, &after, version, &e, now)
                        .await?
                    {
                        return Ok(started);
                    }
                }
                let reason = format!(
                    "{step} failed at {}: {e}; the step will be completed on the next run",
                    effect_name(effect)
                );
                warn!(identity = %subject, %step, error = %e, "step failed");
                self.report(run, &subject, step, Outcome::Failed, &reason);
                self.audit(&subject, step.as_str(), Outcome::Failed, &reason, run, now)
                    .await?;
                self.emit(
                    run,
                    OutboundEvent::for_record(REMEDIATION_FAILED, &record, &reason),
                )
                .await;
                return Ok(());
            }
        }
        let done = AuditEntry {
            at: started_at,
            step: step.as_str().to_string(),
            outcome: Outcome::Done,
            actor: self.actor.clone(),
            reason: run.with_note_on(&d.reason),
            event_id: run.event_id.clone(),
        };
        after.version = version;
        after.pending = None;
        self.store
            .commit(&after, &done, &format!("done-{step}"))
            .await?;
        self.emit(run, OutboundEvent::step_done(step, &after, &d.reason))
            .await;
        if step == Step::Quarantine {
            {
                let mut state = run.state();
                state.breaker.quarantines.push(now);
                state
                    .breaker
                    .quarantines
                    .retain(|t| *t > now - chrono::Duration::hours(24));
            }
            self.save_breaker(run).await?;
        }
        info!(identity = %subject, %step, reason = %d.reason, "step done");
        self.report(run, &subject, step, Outcome::Done, &d.reason);
        Ok(())
    }

    /// Hands the step to SSM Automation after IAM refused it. `Ok(None)` when no document or no
    /// fallback covers it (the caller records the failure).
    #[allow(clippy::too_many_arguments)]
    async fn start_fallback(
        &self,
        run: &Run,
        record: &Record,
        step: Step,
        effects: &[Effect],
        after: &Record,
        version: u64,
        cause: &PortError,
        now: Timestamp,
    ) -> Result<Option<()>> {
        let Some(setup) = &self.fallback else {
            return Ok(None);
        };
        let attempt = format!("{}#{}", record.subject.id(), fmt_time(now));
        let Some(requests) = automation_for(
            &record.subject,
            step,
            effects,
            &setup.automation_role,
            &attempt,
        ) else {
            return Ok(None);
        };
        let mut executions = Vec::new();
        for request in &requests {
            executions.push(setup.runner.start(request).await?);
        }
        let mut with_fallback = record.clone();
        with_fallback.pending = Some(Intent {
            step,
            started_at: now,
            effects: effects.to_vec(),
            after: Box::new(after.clone()),
            fallback: executions.clone(),
        });
        with_fallback.next_step = Some(step);
        with_fallback.next_due_at = Some(now);
        with_fallback.version = version;
        self.store.save(&with_fallback).await?;
        let docs: Vec<&str> = requests.iter().map(|r| r.document.as_str()).collect();
        let reason = format!(
            "{}; started SSM Automation {} (execution {})",
            cause.message,
            docs.join(", "),
            executions.join(", ")
        );
        info!(identity = %record.subject, %step, executions = ?executions, "fell back to SSM Automation");
        self.report(
            run,
            &record.subject,
            step,
            Outcome::FallbackStarted,
            &reason,
        );
        self.audit(
            &record.subject,
            step.as_str(),
            Outcome::FallbackStarted,
            &reason,
            run,
            now,
        )
        .await?;
        Ok(Some(()))
    }

    /// A step handed to SSM: commit when every execution succeeded, record the failure when one
    /// failed or ran too long, wait otherwise.
    async fn poll_fallback(&self, run: &Run, record: Record, now: Timestamp) -> Result<()> {
        let (Some(intent), Some(setup)) = (&record.pending, &self.fallback) else {
            return Ok(());
        };
        let subject = record.subject.clone();
        let step = intent.step;
        let mut failure = None;
        let mut running = false;
        for id in &intent.fallback {
            match setup.runner.status(id).await? {
                AutomationStatus::Succeeded => {}
                AutomationStatus::Running => running = true,
                AutomationStatus::Failed(why) => failure = Some(format!("execution {id}: {why}")),
            }
        }
        if failure.is_none() && running && now - intent.started_at > FALLBACK_TIMEOUT {
            failure = Some(format!(
                "still running after {} hours",
                FALLBACK_TIMEOUT.num_hours()
            ));
        }
        if let Some(why) = failure {
            let reason = format!("{step} through SSM Automation failed: {why}");
            warn!(identity = %subject, %step, %reason, "fallback failed");
            let mut failed = record.clone();
            failed.pending = None;
            failed.reason = reason.clone();
            // Try again tomorrow rather than on every tick.
            failed.next_step = Some(step);
            failed.next_due_at = Some(now + chrono::Duration::days(1));
            self.store.save(&failed).await?;
            self.report(run, &subject, step, Outcome::Failed, &reason);
            self.audit(&subject, step.as_str(), Outcome::Failed, &reason, run, now)
                .await?;
            self.emit(
                run,
                OutboundEvent::for_record(REMEDIATION_FAILED, &failed, &reason),
            )
            .await;
            return Ok(());
        }
        if running {
            return Ok(());
        }
        let mut after = (*intent.after).clone();
        after.version = record.version;
        after.pending = None;
        let reason = format!("{} (through SSM Automation)", after.reason);
        self.store.save(&after).await?;
        self.emit(run, OutboundEvent::step_done(step, &after, &reason))
            .await;
        if step == Step::Quarantine {
            run.state().breaker.quarantines.push(now);
        }
        info!(identity = %subject, %step, "SSM Automation finished the step");
        self.report(run, &subject, step, Outcome::Done, &reason);
        self.audit(&subject, step.as_str(), Outcome::Done, &reason, run, now)
            .await
    }

    async fn apply(
        &self,
        subject: &Subject,
        effect: &Effect,
        now: Timestamp,
    ) -> std::result::Result<(), PortError> {
        match effect {
            Effect::TakeSnapshot => {
                let snapshot = self.iam.snapshot(&subject.principal, now).await?;
                self.store.put_snapshot(subject, &snapshot).await
            }
            other => self.iam.apply(&subject.principal, other).await,
        }
    }
}

/// The stored record of `subject`, or a new one.
fn record_for(records: &[Record], subject: &Subject) -> Record {
    records
        .iter()
        .find(|r| r.subject == *subject)
        .cloned()
        .unwrap_or_else(|| Record::new(subject.clone()))
}

fn effect_name(e: &Effect) -> &'static str {
    match e {
        Effect::PutTags { .. } => "tagging",
        Effect::RemoveTags { .. } => "untagging",
        Effect::PutQuarantinePolicy => "attaching the quarantine policy",
        Effect::DeleteQuarantinePolicy => "removing the quarantine policy",
        Effect::DeactivateKeys { .. } => "deactivating access keys",
        Effect::ReactivateKeys { .. } => "reactivating access keys",
        Effect::TakeSnapshot => "taking the snapshot",
        Effect::DeletePrincipal => "deleting the identity",
        Effect::DeleteAccessKey { .. } => "deleting the access key",
        Effect::DeleteLoginProfile => "deleting the login profile",
    }
}
