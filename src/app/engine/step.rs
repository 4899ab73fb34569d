//! The one path from a decision to IAM. Every step goes through [`Engine::carry_out`]: a fresh
//! step, a resumed intent (decided again through the same guards by `decide`), an undo, a step
//! nominated by an event. Failures of a started step go through [`Engine::step_failed`].

use tracing::{info, warn};

use crate::domain::event::REMEDIATION_FAILED;
use crate::domain::exemption;
use crate::domain::ladder::{INTENT_LEASE, RECREATED};
use crate::domain::security_hub::remember_nominating;
use crate::domain::time::fmt_time;
use crate::domain::{
    retry_delay, Action, AuditEntry, Decision, Effect, Facts, Gate, Intent, OutboundEvent, Outcome,
    PlannedStep, Record, Stage, Step, Subject, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{ErrorKind, Iam, PortError, Store};

use super::super::run::Run;
use super::Engine;

impl<I: Iam, S: Store> Engine<I, S> {
    /// Decides for one subject and carries the decision out. On a lost race, re-reads the record
    /// and decides once more.
    pub(super) async fn decide_and_carry_out(
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
            // Committing a finished execution is a write: not in a dry run.
            if self.policy.dry_run {
                return Ok(());
            }
            if exemption::protection(&record.subject.principal, &self.policy.exemptions).is_none() {
                return self.poll_fallback(run, record, now).await;
            }
            return self.protected_during_fallback(run, record, now).await;
        }
        if let (Some(f), Some(_)) = (facts, &self.notify) {
            run.remember_tags(f);
        }
        let Some(d) = self.decide_confirmed(run, &record, facts, now).await? else {
            return Ok(());
        };
        match self.carry_out(run, record.clone(), d, now).await {
            Err(Error::Port(e)) if e.kind == ErrorKind::Conflict => {
                self.decide_again(run, &record.subject, now).await
            }
            other => other,
        }
    }

    /// Another run changed `subject` first: decides again on a fresh read of its record and of
    /// IAM (the other run may have acted on newer facts: an exemption, a use). A second lost race
    /// leaves it to the other run.
    pub(super) async fn decide_again(
        &self,
        run: &Run,
        subject: &Subject,
        now: Timestamp,
    ) -> Result<()> {
        let Some(current) = self.store.load(subject).await? else {
            return Ok(());
        };
        info!(identity = %subject, "another run changed this identity first; deciding again");
        let principal = &subject.principal;
        let facts = self
            .iam
            .fresh_facts(principal.kind, &principal.name)
            .await?;
        let Some(d) = self
            .decide_confirmed(run, &current, facts.as_ref(), now)
            .await?
        else {
            return Ok(());
        };
        let about = d.step().unwrap_or(Step::Notice);
        match self.carry_out(run, current, d, now).await {
            Err(Error::Port(e)) if e.kind == ErrorKind::Conflict => {
                self.report(
                    run,
                    subject,
                    about,
                    Outcome::Skipped,
                    "changed concurrently by another run; left to it",
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Applies a decision: nothing, a bookkeeping write, a dry-run note, a breaker stop, or a
    /// step. `record` is the stored record the decision was made on (its version guards every
    /// write).
    pub(crate) async fn carry_out(
        &self,
        run: &Run,
        record: Record,
        d: Decision,
        now: Timestamp,
    ) -> Result<()> {
        let subject = record.subject.clone();
        let planned = match d.action {
            Action::Wait => return Ok(()),
            Action::Record(after) => {
                if self.policy.dry_run {
                    return Ok(());
                }
                let what = match after.stage {
                    Stage::Clean if after.reason.starts_with(RECREATED) => "recreated",
                    Stage::Exempt | Stage::Clean | Stage::Released => "exempt",
                    Stage::Noticed
                    | Stage::Quarantined
                    | Stage::KeysDeactivated
                    | Stage::PendingDelete
                    | Stage::Deleted => "delete",
                };
                info!(identity = %subject, stage = %after.stage, reason = %after.reason, "state updated");
                self.store.save(&after).await?;
                if record.stage.is_on_ladder() && !after.stage.is_on_ladder() {
                    run.ladder_ended(&subject.principal);
                }
                if record.stage.is_on_ladder() && !after.stage.is_on_ladder() {
                    // Off the ladder without a step (gone outside dormant, exempt): archived.
                    Box::pin(self.tell_hub(run, record.stage, &after, None, &after.reason, now))
                        .await;
                }
                return self
                    .audit(&subject, what, Outcome::Skipped, &after.reason, run, now)
                    .await;
            }
            Action::Step(planned) => *planned,
        };
        let step = planned.step;
        match &planned.gate {
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
                if trip.newly_tripped && self.breaker().trip(&trip.cause, now).await? {
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
            Gate::Proceed => self.take_step(run, record, planned, &d.reason, now).await,
        }
    }

    /// Takes a step: claims it with a write-ahead intent (conditional on the record's version,
    /// so two runs never carry out one step together), applies each effect, commits.
    async fn take_step(
        &self,
        run: &Run,
        record: Record,
        planned: PlannedStep,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        let subject = record.subject.clone();
        let PlannedStep {
            step,
            effects,
            mut after,
            resumes,
            blocked,
            ..
        } = planned;
        if let Some(finding) = run.nominating_finding(&subject) {
            remember_nominating(&mut after, finding);
        }
        // The same step decided again while its intent is pending (a release after a crashed
        // undo, an exemption's release resumed) continues that intent: its done entry, keyed by
        // the intent's start, is then written once however many runs it takes.
        let resumes = resumes.or_else(|| {
            let pending = record.pending.as_ref().filter(|i| i.step == step);
            pending.map(|i| i.started_at)
        });
        let started_at = resumes.unwrap_or(now);
        let earlier = record.pending.as_ref().filter(|_| resumes.is_some());
        let mut intent = Intent::new(step, started_at, effects.clone(), after.clone());
        intent.attempts = earlier.map_or(0, |i| i.attempts);
        intent.last_error = earlier.and_then(|i| i.last_error.clone());
        intent.held_until = Some(now + INTENT_LEASE);
        let mut with_intent = record.clone();
        with_intent.pending = Some(intent);
        with_intent.next_step = Some(step);
        // If this run dies, the due index hands the intent to the first run after the lease.
        with_intent.next_due_at = Some(now + INTENT_LEASE);
        let version = self.store.save(&with_intent).await?;
        with_intent.version = version;

        if let Some(why) = blocked {
            // Calling IAM (or SSM) would only be refused: a recorded failure, retried later.
            return self
                .step_failed(run, &with_intent, "the credentials guard", &why, now)
                .await;
        }
        let via_ssm = self
            .fallback
            .as_ref()
            .is_some_and(|f| f.always.contains(&step));
        for (n, effect) in effects.iter().enumerate() {
            let result = match effect {
                // The controller always takes snapshots itself, and never hands a delete to SSM
                // before its snapshot is stored.
                Effect::TakeSnapshot => {
                    let decided = record.unique_id.as_deref().or(after.unique_id.as_deref());
                    self.snapshot(&subject, decided, resumes, now).await
                }
                _ if via_ssm && !effect.is_tag_change() => Err(PortError::new(
                    ErrorKind::AccessDenied,
                    "fallback",
                    format!("{step} is configured to run through SSM (fallback.ssm_steps)"),
                )),
                _ => self.iam.apply(&subject.principal, effect).await,
            };
            let Err(e) = result else { continue };
            // No document writes dormant's tags: a refused tag change fails the step here.
            if e.kind == ErrorKind::AccessDenied
                && *effect != Effect::TakeSnapshot
                && !effect.is_tag_change()
            {
                if let Some(setup) = self.fallback.clone().filter(|f| f.starts) {
                    let started = self
                        .start_fallback(run, &setup, &with_intent, n, &e, now)
                        .await;
                    match started {
                        Ok(true) => return Ok(()),
                        Ok(false) => {}
                        Err(start_error) => {
                            let why =
                                format!("{e}; starting SSM Automation failed too: {start_error}");
                            return self
                                .step_failed(run, &with_intent, effect_name(effect), &why, now)
                                .await;
                        }
                    }
                }
            }
            return self
                .step_failed(run, &with_intent, effect_name(effect), &e.to_string(), now)
                .await;
        }
        let done = AuditEntry {
            at: started_at,
            step: step.as_str().to_string(),
            outcome: Outcome::Done,
            actor: self.actor.clone(),
            reason: run.with_note_on(reason),
            event_id: run.event_id.clone(),
        };
        after.version = version;
        after.pending = None;
        // A sweep's fresh notices are committed together, while their intents' leases hold (a
        // resumed one may look, to `undo`, like an intent nobody is carrying out).
        let held_until = now + INTENT_LEASE;
        if step == Step::Notice
            && run.batches_notices()
            && resumes.is_none()
            && record.pending.is_none()
            && self.lease_holds(held_until)
        {
            return self
                .queue_notice(run, record.stage, after, done, reason, held_until, now)
                .await;
        }
        self.store
            .commit(&after, &done, &format!("done-{step}"))
            .await?;
        self.step_done(run, record.stage, &after, step, reason, now)
            .await
    }

    /// What follows a committed step, whoever carried it out: its event, Security Hub, the
    /// breaker's count, the report. `before` is the stage the step started from.
    pub(super) async fn step_done(
        &self,
        run: &Run,
        before: Stage,
        after: &Record,
        step: Step,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.emit(run, OutboundEvent::step_done(step, after, reason))
            .await;
        Box::pin(self.tell_hub(run, before, after, Some(step), reason, now)).await;
        Box::pin(self.tell_owner(run, after, step, now)).await;
        if step == Step::Quarantine {
            // The step is committed; a count that cannot be written is logged, not a failure.
            if let Err(e) = self.breaker().count_quarantine(now).await {
                warn!(account = self.account(), error = %e, "could not count a quarantine in the breaker's window");
            }
        }
        info!(identity = %after.subject, %step, %reason, "step done");
        self.report(run, &after.subject, step, Outcome::Done, reason);
        if before.is_on_ladder() && !after.stage.is_on_ladder() {
            run.ladder_ended(&after.subject.principal);
        }
        Ok(())
    }

    /// Takes the snapshot a delete needs and proves it stored: no teardown (direct or through
    /// SSM) starts otherwise. A resumed delete keeps the snapshot taken before its teardown
    /// began; a second one would capture a half-torn-down identity.
    async fn snapshot(
        &self,
        subject: &Subject,
        decided: Option<&str>,
        resumes: Option<Timestamp>,
        now: Timestamp,
    ) -> std::result::Result<(), PortError> {
        if let Some(started_at) = resumes {
            let kept = self.store.latest_snapshot(subject).await?;
            if kept.is_some_and(|s| s.taken_at >= started_at) {
                return Ok(());
            }
        }
        let snapshot = self.iam.snapshot(&subject.principal, now).await?;
        // The teardown acts by name: an identity created again since the decision is not the
        // one decided on, and nothing of it is deleted.
        if let (Some(want), Some(found)) = (decided, snapshot.unique_id.as_deref()) {
            if want != found {
                return Err(PortError::new(
                    ErrorKind::Permanent,
                    "snapshot",
                    format!(
                        "{} is now {found}, not {want} decided on: it was created again, and \
                         nothing of it was deleted",
                        subject.principal.arn()
                    ),
                ));
            }
        }
        self.store.put_snapshot(subject, &snapshot).await?;
        let stored = self.store.latest_snapshot(subject).await?;
        if stored.as_ref() == Some(&snapshot) {
            Ok(())
        } else {
            Err(PortError::new(
                ErrorKind::Permanent,
                "snapshot",
                "the snapshot read back from the table is not the one just stored",
            ))
        }
    }

    /// The one failure handler of a started step: the intent stays (the next attempt decides
    /// again through every guard), backs off exponentially, and the failure is audited; the
    /// `Remediation Failed` event goes out once per distinct failure, not once per attempt.
    pub(super) async fn step_failed(
        &self,
        run: &Run,
        with_intent: &Record,
        at: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<()> {
        let subject = &with_intent.subject;
        let Some(intent) = &with_intent.pending else {
            return Ok(());
        };
        let step = intent.step;
        let attempts = intent.attempts.saturating_add(1);
        let retry_at = now + retry_delay(attempts);
        let what = format!("{at}: {error}");
        let repeated = intent.last_error.as_deref() == Some(what.as_str());
        let mut failed = with_intent.clone();
        if let Some(i) = failed.pending.as_mut() {
            i.attempts = attempts;
            i.held_until = Some(retry_at);
            i.last_error = Some(what.clone());
            i.fallback.clear();
        }
        failed.next_step = Some(step);
        failed.next_due_at = Some(retry_at);
        let reason = format!(
            "{step} failed at {what} (attempt {attempts}); next attempt at {}",
            fmt_time(retry_at)
        );
        warn!(identity = %subject, %step, error, attempts, "step failed");
        match self.store.save(&failed).await {
            Ok(_) => {}
            // Another run took the intent over: the failure is still reported and audited.
            Err(e) if e.kind == ErrorKind::Conflict => {
                info!(identity = %subject, "intent taken over by another run after the failure");
            }
            Err(e) => return Err(e.into()),
        }
        self.report(run, subject, step, Outcome::Failed, &reason);
        self.audit(subject, step.as_str(), Outcome::Failed, &reason, run, now)
            .await?;
        if !repeated {
            self.emit(
                run,
                OutboundEvent::for_record(REMEDIATION_FAILED, with_intent, &reason),
            )
            .await;
        }
        Ok(())
    }
}

pub(super) fn effect_name(e: &Effect) -> &'static str {
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
