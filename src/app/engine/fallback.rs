//! Steps handed to SSM Automation: started when IAM refuses the controller (or the step is
//! configured to run there), polled by later runs, stopped before an undo.

use std::sync::Arc;

use tracing::{info, warn};

use crate::domain::fallback::{automation_for, landed};
use crate::domain::ladder::INTENT_LEASE;
use crate::domain::time::fmt_time;
use crate::domain::{Action, AutomationStatus, Effect, Intent, Outcome, Record, Step, Timestamp};
use crate::error::{Error, Result};
use crate::ports::{ErrorKind, Fallback, Iam, PortError, Store};

use super::super::run::Run;
use super::Engine;

/// The SSM fallback: the port, the role the documents run as, and the steps always run there.
#[derive(Clone)]
pub struct FallbackSetup {
    pub runner: Arc<dyn Fallback>,
    pub automation_role: String,
    pub always: Vec<Step>,
    /// Whether steps may be handed to SSM; `false`: only executions already running are polled
    /// and stopped (the answers function, whose role may not start them).
    pub starts: bool,
}

impl FallbackSetup {
    /// Polls and stops executions, never starts one: a refused step is a recorded failure that
    /// the controller's next run takes up.
    pub fn stop_only(mut self) -> Self {
        self.always.clear();
        self.starts = false;
        self
    }
}

/// How long an Automation execution may run before it counts as failed.
const FALLBACK_TIMEOUT: chrono::Duration = chrono::Duration::hours(24);

/// How long an execution SSM does not know yet still counts as starting.
const UNKNOWN_EXECUTION_GRACE: chrono::Duration = chrono::Duration::minutes(10);

/// How often, and how far apart, `undo` looks whether a stopped execution has ended.
const STOP_POLLS: u32 = 15;
const STOP_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl<I: Iam, S: Store> Engine<I, S> {
    /// Hands the step of `with_intent` (its intent already stored) to SSM Automation after IAM
    /// refused its effect number `refused`. `Ok(false)` when no document covers it (the caller
    /// records the failure). The tag changes planned before a guarded effect after that one (the
    /// credentials marker, a stage tag written first) are made first: the documents act under
    /// the same guards and write none of them.
    pub(super) async fn start_fallback(
        &self,
        run: &Run,
        setup: &FallbackSetup,
        with_intent: &Record,
        refused: usize,
        cause: &PortError,
        now: Timestamp,
    ) -> Result<bool> {
        let Some(intent) = &with_intent.pending else {
            return Ok(false);
        };
        let subject = &with_intent.subject;
        let step = intent.step;
        let attempt = format!("{}#{}", subject.id(), fmt_time(now));
        let Some(requests) = automation_for(
            subject,
            step,
            &intent.effects,
            &setup.automation_role,
            &attempt,
        ) else {
            return Ok(false);
        };
        let last_guarded = intent.effects.iter().rposition(Effect::needs_user_marker);
        for effect in intent
            .effects
            .iter()
            .enumerate()
            .filter(|(n, _)| *n > refused && last_guarded.is_some_and(|g| *n < g))
            .map(|(_, e)| e)
            .filter(|e| e.is_tag_change())
        {
            self.iam.apply(&subject.principal, effect).await?;
        }
        let mut executions = Vec::new();
        for request in &requests {
            executions.push(setup.runner.start(request).await?);
        }
        let mut with_fallback = with_intent.clone();
        if let Some(i) = with_fallback.pending.as_mut() {
            i.fallback = executions.clone();
            i.fallback_since = Some(now);
        }
        with_fallback.next_due_at = Some(now);
        self.store.save(&with_fallback).await?;
        let docs: Vec<&str> = requests.iter().map(|r| r.document.as_str()).collect();
        let reason = format!(
            "{}; started SSM Automation {} (execution {})",
            cause.message,
            docs.join(", "),
            executions.join(", ")
        );
        info!(identity = %subject, %step, executions = ?executions, "fell back to SSM Automation");
        self.report(run, subject, step, Outcome::FallbackStarted, &reason);
        self.audit(
            subject,
            step.as_str(),
            Outcome::FallbackStarted,
            &reason,
            run,
            now,
        )
        .await?;
        Ok(true)
    }

    /// A step handed to SSM: commit when every execution succeeded, go through the failure
    /// handler when one failed or ran too long (the next attempt decides again), wait otherwise.
    pub(super) async fn poll_fallback(
        &self,
        run: &Run,
        record: Record,
        now: Timestamp,
    ) -> Result<()> {
        let (Some(intent), Some(setup)) = (&record.pending, &self.fallback) else {
            return Ok(());
        };
        let subject = record.subject.clone();
        let step = intent.step;
        let mut failure = None;
        let mut running = Vec::new();
        for id in &intent.fallback {
            match setup.runner.status(id).await {
                Ok(AutomationStatus::Succeeded) => {}
                Ok(AutomationStatus::Running) => running.push(id),
                Ok(AutomationStatus::Failed(why)) => {
                    failure = Some(format!("execution {id}: {why}"))
                }
                // SSM keeps executions for a while only; right after a start it may not know
                // one yet. Unknown past that: nothing to wait for, decide again.
                Err(e) if e.kind == ErrorKind::NotFound => {
                    let since = intent.fallback_since.unwrap_or(intent.started_at);
                    if now - since < UNKNOWN_EXECUTION_GRACE {
                        running.push(id);
                    } else {
                        failure = Some(format!(
                            "execution {id} is unknown to SSM in account {}: {e}",
                            self.account()
                        ));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let since = intent.fallback_since.unwrap_or(intent.started_at);
        if failure.is_none() && !running.is_empty() && now - since > FALLBACK_TIMEOUT {
            failure = Some(format!(
                "still running after {} hours",
                FALLBACK_TIMEOUT.num_hours()
            ));
        }
        if let Some(why) = failure {
            // The next attempt starts afresh: nothing of this one may land after it.
            for id in &running {
                if let Err(e) = setup.runner.stop(id).await {
                    warn!(execution = %id, error = %e, "could not stop an SSM execution of a failed step");
                }
            }
            // Executions asked to stop (not waited for) may still land: `fallback_since` stays
            // and a release keeps its claim on the quarantine. None running: nothing can land.
            let mut record = record.clone();
            if running.is_empty() {
                if let Some(i) = record.pending.as_mut() {
                    i.fallback_since = None;
                }
            }
            return self
                .step_failed(run, &record, "SSM Automation", &why, now)
                .await;
        }
        if !running.is_empty() {
            return Ok(());
        }
        // SSM says success; IAM, read afresh in this account, must say so too.
        let principal = &subject.principal;
        let fresh = self
            .iam
            .fresh_facts(principal.kind, &principal.name)
            .await?;
        if let Err(why) = landed(
            &subject,
            step,
            &intent.effects,
            record
                .unique_id
                .as_deref()
                .or(intent.after.unique_id.as_deref()),
            fresh.as_ref(),
        ) {
            let why = format!("SSM Automation reported success, but {why}");
            return self
                .step_failed(run, &record, "SSM Automation", &why, now)
                .await;
        }
        // dormant's own tag changes are the controller's (the documents write none of the
        // credential tags): made now, in order, which is idempotent for those made already.
        // Those before the last guarded effect were made before the hand-over (the marker, a
        // stage tag written first): not again, as owners' tags added since may leave no room.
        let last_guarded = intent.effects.iter().rposition(Effect::needs_user_marker);
        if fresh.is_some() {
            for effect in intent
                .effects
                .iter()
                .enumerate()
                .filter(|(n, e)| e.is_tag_change() && last_guarded.is_none_or(|g| *n > g))
                .map(|(_, e)| e)
            {
                if let Err(e) = self.iam.apply(principal, effect).await {
                    let why = format!("SSM Automation succeeded, but {e}");
                    return self.step_failed(run, &record, "untagging", &why, now).await;
                }
            }
        }
        let mut after = (*intent.after).clone();
        after.version = record.version;
        after.pending = None;
        let reason = format!("{} (through SSM Automation)", after.reason);
        self.store.save(&after).await?;
        self.audit(&subject, step.as_str(), Outcome::Done, &reason, run, now)
            .await?;
        self.step_done(run, record.stage, &after, step, &reason, now)
            .await
    }

    /// A step handed to SSM whose identity has since been protected: its executions are stopped
    /// (nothing more of it may land), nothing of it is finished by the controller (no tag
    /// change), and the record is decided again on a fresh read, which records the protection
    /// and what the executions left. A stop that fails is an error: the next run tries again.
    pub(super) async fn protected_during_fallback(
        &self,
        run: &Run,
        record: Record,
        now: Timestamp,
    ) -> Result<()> {
        let Some(intent) = &record.pending else {
            return Ok(());
        };
        if !self.mode().writes() {
            return Ok(());
        }
        let since = intent.fallback_since.unwrap_or(intent.started_at);
        let executions = intent.fallback.join(", ");
        // Past the timeout nothing of them can still run; with no SSM client nothing can be
        // stopped (the reason says they may still run).
        let stopped = if self.fallback.is_none() || now - since > FALLBACK_TIMEOUT {
            "not stopped (no SSM client, or past the timeout): they may have changed it"
        } else {
            if let Err(e) = self.stop_fallback(intent, "protection").await {
                let why = format!("the identity is protected, and stopping {executions}: {e}");
                return self
                    .step_failed(run, &record, "SSM Automation", &why, now)
                    .await;
            }
            "stopped; what they changed before that stays"
        };
        info!(identity = %record.subject, step = %intent.step, %executions, stopped,
            "protected while SSM Automation had the step: nothing of it finished");
        let principal = &record.subject.principal;
        let fresh = self
            .iam
            .fresh_facts(principal.kind, &principal.name)
            .await?;
        let Some(mut d) = self
            .decide_confirmed(run, &record, fresh.as_ref(), now)
            .await?
        else {
            return Ok(());
        };
        if let Action::Record(after) = &mut d.action {
            after.reason = format!(
                "{}; SSM Automation execution(s) {executions} of its {} {stopped}",
                after.reason, intent.step
            );
        }
        self.carry_out(run, record, d, now).await
    }

    /// Refuses `undo` and `exempt` while the identity is being deleted: by SSM (an execution
    /// running, or one SSM may not know yet) or by another run under its lease. Stopped half-way
    /// a delete would leave the identity stripped of what it had, and its snapshot can only
    /// recreate it once it is deleted. A delete that failed and waits for its retry is not
    /// refused (the caller says what it may have removed).
    pub(crate) async fn refuse_during_delete(&self, intent: &Intent, now: Timestamp) -> Result<()> {
        if intent.step != Step::Delete {
            return Ok(());
        }
        let since = intent.fallback_since.unwrap_or(intent.started_at);
        let by = if intent.fallback.is_empty() {
            if intent.last_error.is_some() || now >= intent.not_before(INTENT_LEASE) {
                return Ok(());
            }
            "another run".to_string()
        } else {
            let Some(setup) = &self.fallback else {
                // `stop_fallback` refuses: nothing can be stopped without SSM.
                return Ok(());
            };
            // Right after a start SSM may not know it yet (as `poll_fallback` waits).
            let just_started = now - since < UNKNOWN_EXECUTION_GRACE;
            let running = running(setup, intent, just_started).await?;
            if running.is_empty() {
                return Ok(());
            }
            format!("SSM Automation {}", running.join(", "))
        };
        Err(Error::Rejected(format!(
            "{} is being deleted by {by} since {}; stopping it half-way would leave it stripped: \
             once the deletion has finished, `dormant restore` recreates it from the snapshot \
             taken before it",
            intent.after.subject,
            fmt_time(since)
        )))
    }

    /// Stops the SSM executions of an intent and waits until they have ended, so that nothing
    /// lands in IAM after an undo, a keep or a protection (`why`). An error (nothing changed)
    /// if one cannot be stopped.
    /// Returns the executions it asked to stop.
    pub(crate) async fn stop_fallback(&self, intent: &Intent, why: &str) -> Result<Vec<String>> {
        if intent.fallback.is_empty() {
            return Ok(Vec::new());
        }
        let Some(setup) = &self.fallback else {
            return Err(Error::Rejected(format!(
                "SSM Automation execution(s) {} of the pending {} may still be running, and no \
                 SSM client is configured to stop them; stop them in the console and try again",
                intent.fallback.join(", "),
                intent.step
            )));
        };
        let mut stopped = Vec::new();
        for id in &intent.fallback {
            if still_running(setup, id, false).await? {
                info!(execution = %id, step = %intent.step, "stopping SSM Automation before {why}");
                setup.runner.stop(id).await?;
                stopped.push(id.clone());
            }
        }
        for poll in 0..STOP_POLLS {
            let running = running(setup, intent, false).await?;
            if running.is_empty() {
                return Ok(stopped);
            }
            if poll + 1 < STOP_POLLS {
                tokio::time::sleep(STOP_POLL_INTERVAL).await;
            } else {
                warn!(executions = ?running, "SSM Automation still running after stop");
                return Err(Error::Rejected(format!(
                    "SSM Automation execution(s) {} of the pending {} are still running after \
                     being asked to stop; nothing was undone: try again in a minute",
                    running.join(", "),
                    intent.step
                )));
            }
        }
        Ok(stopped)
    }
}

/// The intent's executions that still run (`unknown_runs`: as for `still_running`).
async fn running<'a>(
    setup: &FallbackSetup,
    intent: &'a Intent,
    unknown_runs: bool,
) -> std::result::Result<Vec<&'a str>, PortError> {
    let mut running = Vec::new();
    for id in &intent.fallback {
        if still_running(setup, id, unknown_runs).await? {
            running.push(id.as_str());
        }
    }
    Ok(running)
}

/// Whether an execution still runs. One SSM does not know ended long ago, unless
/// `unknown_runs` (it was started a moment ago: SSM may not know it yet).
async fn still_running(
    setup: &FallbackSetup,
    id: &str,
    unknown_runs: bool,
) -> std::result::Result<bool, PortError> {
    match setup.runner.status(id).await {
        Ok(status) => Ok(status == AutomationStatus::Running),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(unknown_runs),
        Err(e) => Err(e),
    }
}
