//! The engine: load → re-read facts → exemptions → decide → write intent → execute → commit →
//! audit. It never acts on bulk facts: any step is preceded by a fresh read of that principal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::{info, warn};

use crate::domain::event::REMEDIATION_FAILED;
use crate::domain::facts::fmt_time;
use crate::domain::fallback::automation_for;
use crate::domain::ladder::INTENT_LEASE;
use crate::domain::AutomationStatus;
use crate::domain::OutboundEvent;
use crate::domain::{
    decide, dormant_subjects, AuditEntry, BreakerState, Budget, Decision, Effect, Facts, Gate,
    Intent, Outcome, Policy, PrincipalKind, Record, Scope, Stage, Step, Subject, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{AccessAdvisor, ErrorKind, Fallback, Iam, PortError, Publisher, Store};

use super::output::{ActionReport, RunReport};

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

/// The SSM fallback: the port, the role the documents run as, and the steps always run there.
#[derive(Clone)]
pub struct FallbackSetup {
    pub runner: Arc<dyn Fallback>,
    pub automation_role: String,
    pub always: Vec<Step>,
}

/// How long an Automation execution may run before it counts as failed.
const FALLBACK_TIMEOUT: chrono::Duration = chrono::Duration::hours(24);

/// What one run has done so far.
pub(crate) struct Run {
    pub(crate) budget: Budget,
    pub(crate) breaker: BreakerState,
    pub(crate) report: RunReport,
    pub(crate) event_id: Option<String>,
    /// Appended to every audit reason of this run (see [`Nomination::note`]).
    pub(crate) note: Option<String>,
}

impl<I: Iam, S: Store> Engine<I, S> {
    pub fn new(iam: I, store: S, policy: Policy, actor: impl Into<String>) -> Self {
        Engine {
            iam,
            store,
            policy,
            actor: actor.into(),
            publisher: None,
            fallback: None,
            advisor: None,
        }
    }

    pub fn with_advisor(mut self, advisor: Arc<dyn AccessAdvisor>) -> Self {
        self.advisor = Some(advisor);
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

    /// Publishes dormant's own events. A failure is logged and never undoes a committed step.
    pub(crate) async fn publish(&self, events: Vec<OutboundEvent>) {
        let Some(p) = &self.publisher else { return };
        if let Err(e) = p.publish(&events).await {
            warn!(error = %e, events = events.len(), "could not publish dormant events; the steps stand");
        }
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
        Ok(Run {
            budget,
            breaker,
            report: RunReport::default(),
            event_id: event_id.map(str::to_string),
            note: None,
        })
    }

    /// Evaluates every identity in the account and takes whatever step is due.
    pub async fn sweep(&self, now: Timestamp) -> Result<RunReport> {
        let mut run = self.start_run(None, now).await?;
        let bulk = self.iam.bulk_facts().await?;
        let identities = u32::try_from(bulk.len()).unwrap_or(u32::MAX);
        run.budget.identities_in_account = identities;
        run.breaker.identities = identities;
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
        for (n, facts) in bulk.iter().enumerate() {
            let records = tracked.remove(&facts.principal.arn()).unwrap_or_default();
            if let Err(e) = self.sweep_principal(&mut run, facts, records, now).await {
                self.record_failure(&mut run, &Subject::whole(facts.principal.clone()), None, &e);
            }
            run.report.evaluated += 1;
            if (n + 1) % 1000 == 0 {
                info!(done = n + 1, of = bulk.len(), "sweep progress");
            }
        }
        // Tracked principals the bulk listing did not show: look before concluding they are gone
        // (a listing can end early).
        for records in tracked.into_values() {
            let live: Vec<Record> = records
                .into_iter()
                .filter(|r| r.stage != Stage::Deleted)
                .collect();
            let Some(first) = live.first() else { continue };
            run.report.evaluated += 1;
            let principal = first.subject.principal.clone();
            let result = async {
                let fresh = self
                    .iam
                    .fresh_facts(principal.kind, &principal.name)
                    .await?;
                self.evaluate_fresh(&mut run, fresh, live, None, now).await
            }
            .await;
            if let Err(e) = result {
                self.record_failure(&mut run, &Subject::whole(principal), None, &e);
            }
        }
        if !self.policy.dry_run {
            self.store
                .save_breaker(self.account(), &run.breaker)
                .await?;
        }
        Ok(run.report)
    }

    async fn sweep_principal(
        &self,
        run: &mut Run,
        bulk: &Facts,
        records: Vec<Record>,
        now: Timestamp,
    ) -> Result<()> {
        let candidates = dormant_subjects(bulk, &self.policy, now);
        // Bulk reads carry no access-key ids, so credential-level subjects always get a fresh read.
        let credential_level = candidates
            .iter()
            .chain(
                records
                    .iter()
                    .filter(|r| r.stage != Stage::Deleted)
                    .map(|r| &r.subject),
            )
            .any(|s| s.scope != Scope::Whole);
        let whole = Subject::whole(bulk.principal.clone());
        let whole_record = records
            .iter()
            .find(|r| r.subject == whole)
            .cloned()
            .unwrap_or_else(|| Record::new(whole.clone()));
        let look = decide(&whole_record, Some(bulk), &self.policy, &run.budget, now);
        let acts_on_iam = look.step.is_some() && !self.policy.dry_run;
        if !credential_level && !acts_on_iam {
            let Some(look) = self
                .confirmed(run, &whole_record, Some(bulk), look, now)
                .await?
            else {
                return Ok(());
            };
            return self.carry_out(run, whole_record, look, now).await;
        }
        let fresh = self
            .iam
            .fresh_facts(bulk.principal.kind, &bulk.principal.name)
            .await?;
        self.evaluate_fresh(run, fresh, records, None, now).await
    }

    /// Re-reads one principal and decides for the whole and each of its credentials. With
    /// `only`, of the credentials not yet tracked just that one may be put on the ladder.
    async fn evaluate_fresh(
        &self,
        run: &mut Run,
        fresh: Option<Facts>,
        records: Vec<Record>,
        only: Option<&Scope>,
        now: Timestamp,
    ) -> Result<()> {
        let mut subjects: BTreeSet<Subject> = records.iter().map(|r| r.subject.clone()).collect();
        if let Some(f) = &fresh {
            subjects.insert(Subject::whole(f.principal.clone()));
            subjects.extend(
                dormant_subjects(f, &self.policy, now)
                    .into_iter()
                    .filter(|s| only.is_none_or(|o| s.scope == Scope::Whole || s.scope == *o)),
            );
        }
        for subject in subjects {
            let record = records
                .iter()
                .find(|r| r.subject == subject)
                .cloned()
                .unwrap_or_else(|| Record::new(subject.clone()));
            if let Err(e) = self.process(run, record, fresh.as_ref(), now).await {
                self.record_failure(run, &subject, None, &e);
            }
        }
        Ok(())
    }

    /// Takes the steps that are due, re-reading only those identities (the sparse due index).
    pub async fn tick(&self, now: Timestamp) -> Result<RunReport> {
        let mut run = self.start_run(None, now).await?;
        let due = self.store.due(self.account(), now).await?;
        info!(account = self.account(), due = due.len(), "tick");
        for record in due {
            run.report.evaluated += 1;
            let subject = record.subject.clone();
            let result = async {
                let fresh = self
                    .iam
                    .fresh_facts(subject.principal.kind, &subject.principal.name)
                    .await?;
                self.process(&mut run, record, fresh.as_ref(), now).await
            }
            .await;
            if let Err(e) = result {
                self.record_failure(&mut run, &subject, None, &e);
            }
        }
        Ok(run.report)
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
        let Nomination {
            kind,
            name,
            scope,
            event_id,
            note,
        } = nomination;
        // The whole principal is what a scope-less nomination names.
        let scope = scope.filter(|s| *s != Scope::Whole);
        let mut run = self.start_run(event_id, now).await?;
        run.note = note;
        let fresh = self.iam.fresh_facts(kind, name).await?;
        let records = match &fresh {
            Some(f) => self.store.load_principal(&f.principal).await?,
            None => Vec::new(),
        };
        if fresh.is_none() {
            info!(%name, "identity no longer exists; nothing to do");
            return Ok(run.report);
        }
        run.report.evaluated = 1;
        let nominated = fresh.as_ref().map(|f| Subject {
            principal: f.principal.clone(),
            scope: scope.clone().unwrap_or(Scope::Whole),
        });
        self.evaluate_fresh(&mut run, fresh.clone(), records, scope.as_ref(), now)
            .await?;
        // An event only nominates: when IAM says otherwise, say why nothing happened.
        if let (Some(event_id), Some(nominated), true) =
            (event_id, nominated, run.report.actions.is_empty())
        {
            let record = self
                .store
                .load(&nominated)
                .await?
                .unwrap_or_else(|| Record::new(nominated.clone()));
            let d = decide(&record, fresh.as_ref(), &self.policy, &run.budget, now);
            let reason = format!("event {event_id} nominated it; no action: {}", d.reason);
            info!(identity = %nominated, %reason, "re-verified");
            self.report(
                &mut run,
                &nominated,
                Step::Notice,
                Outcome::Skipped,
                &reason,
            );
            if !self.policy.dry_run {
                self.audit(&nominated, "notice", Outcome::Skipped, &reason, &run, now)
                    .await?;
            }
        }
        Ok(run.report)
    }

    /// Decides for one subject and carries the decision out. On a lost race, re-reads and
    /// decides once more.
    async fn process(
        &self,
        run: &mut Run,
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
        let d = decide(&record, facts, &self.policy, &run.budget, now);
        let Some(d) = self.confirmed(run, &record, facts, d, now).await? else {
            return Ok(());
        };
        match self.carry_out(run, record.clone(), d, now).await {
            Err(Error::Port(e)) if e.kind == ErrorKind::Conflict => {
                let Some(current) = self.store.load(&record.subject).await? else {
                    return Ok(());
                };
                info!(identity = %record.subject, "another run changed this identity first; deciding again");
                let d = decide(&current, facts, &self.policy, &run.budget, now);
                let Some(d) = self.confirmed(run, &current, facts, d, now).await? else {
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

    /// With `inactivity.confirm_with_access_advisor`, a step that cuts a whole principal's access
    /// is decided again with Access Advisor's latest `LastAuthenticated` among the facts: a later
    /// date than IAM's counts as use. `None` when no confirmation could be had: the failure is
    /// recorded and the step is not taken this run (fail safe: a role used through a path IAM's
    /// last-used date misses must not be cut off because Access Advisor was unavailable).
    async fn confirmed(
        &self,
        run: &mut Run,
        record: &Record,
        facts: Option<&Facts>,
        d: Decision,
        now: Timestamp,
    ) -> Result<Option<Decision>> {
        let (Some(step), Some(facts)) = (d.step, facts) else {
            return Ok(Some(d));
        };
        // Access Advisor reports per principal, not per credential, so it cannot speak for one
        // key or the password; a resumed intent is finished whatever it says; a step the breaker
        // stops needs no confirmation.
        if !self.policy.inactivity.confirm_with_access_advisor
            || !step.cuts_access()
            || record.subject.scope != Scope::Whole
            || record.pending.is_some()
            || matches!(d.gate, Gate::Breaker(_))
        {
            return Ok(Some(d));
        }
        let answer = match &self.advisor {
            Some(advisor) => advisor.last_authenticated(&facts.principal).await,
            None => Err(PortError::new(
                ErrorKind::Permanent,
                "GenerateServiceLastAccessedDetails",
                "no Access Advisor client is configured",
            )),
        };
        let latest = match answer {
            Ok(latest) => latest,
            Err(e) => {
                self.confirmation_failed(run, record, step, &e, now).await?;
                return Ok(None);
            }
        };
        let mut confirmed = facts.clone();
        confirmed.advisor_last_used = latest;
        let mut again = decide(record, Some(&confirmed), &self.policy, &run.budget, now);
        if again.step == Some(step) {
            let seen = match latest {
                Some(t) => format!("last authenticated {}", fmt_time(t)),
                None => "no service authenticated to in its tracking period".to_string(),
            };
            again.reason = format!("{}; Access Advisor: {seen}", again.reason);
        } else {
            info!(identity = %record.subject, %step, reason = %again.reason, "Access Advisor shows later use; step not taken");
        }
        Ok(Some(again))
    }

    async fn confirmation_failed(
        &self,
        run: &mut Run,
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
        self.publish(vec![OutboundEvent::for_record(
            REMEDIATION_FAILED,
            record,
            &reason,
        )])
        .await;
        Ok(())
    }

    fn report(&self, run: &mut Run, subject: &Subject, step: Step, outcome: Outcome, reason: &str) {
        run.report.actions.push(ActionReport {
            identity: subject.id(),
            step,
            outcome,
            reason: reason.to_string(),
        });
    }

    fn record_failure(&self, run: &mut Run, subject: &Subject, step: Option<Step>, e: &Error) {
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
            reason: with_note(reason, run),
            event_id: run.event_id.clone(),
        };
        self.store.append_audit(subject, &entry).await?;
        Ok(())
    }

    /// Applies a decision: nothing, a bookkeeping write, a dry-run note, a breaker stop, or a step.
    pub(crate) async fn carry_out(
        &self,
        run: &mut Run,
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
                run.budget.record(step);
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
                run.budget.tripped = true;
                run.report.breaker_tripped = true;
                self.report(run, &subject, step, Outcome::Skipped, &trip.cause);
                if self.policy.dry_run {
                    return Ok(());
                }
                if trip.newly_tripped {
                    run.breaker.tripped = true;
                    run.breaker.tripped_at = Some(now);
                    run.breaker.cause = Some(trip.cause.clone());
                    self.store
                        .save_breaker(self.account(), &run.breaker)
                        .await?;
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
        run: &mut Run,
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
        run.budget.record(step);
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
                self.publish(vec![OutboundEvent::for_record(
                    REMEDIATION_FAILED,
                    &record,
                    &reason,
                )])
                .await;
                return Ok(());
            }
        }
        // The done entry is written before the commit, under a key fixed by the intent: a crash
        // between the two leaves the intent, whose completion writes the same entry again.
        let done = AuditEntry {
            at: started_at,
            step: step.as_str().to_string(),
            outcome: Outcome::Done,
            actor: self.actor.clone(),
            reason: with_note(&d.reason, run),
            event_id: run.event_id.clone(),
        };
        self.store
            .append_audit_once(&subject, &done, &format!("done-{step}"))
            .await?;
        after.version = version;
        after.pending = None;
        self.store.save(&after).await?;
        self.publish(vec![OutboundEvent::step_done(step, &after, &d.reason)])
            .await;
        if step == Step::Quarantine {
            run.breaker.quarantines.push(now);
            run.breaker
                .quarantines
                .retain(|t| *t > now - chrono::Duration::hours(24));
            self.store
                .save_breaker(self.account(), &run.breaker)
                .await?;
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
        run: &mut Run,
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
    async fn poll_fallback(&self, run: &mut Run, record: Record, now: Timestamp) -> Result<()> {
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
            self.publish(vec![OutboundEvent::for_record(
                REMEDIATION_FAILED,
                &failed,
                &reason,
            )])
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
        self.publish(vec![OutboundEvent::step_done(step, &after, &reason)])
            .await;
        if step == Step::Quarantine {
            run.breaker.quarantines.push(now);
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

fn with_note(reason: &str, run: &Run) -> String {
    match &run.note {
        Some(note) => format!("{reason}; {note}"),
        None => reason.to_string(),
    }
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
