//! The Access Advisor confirmation (`inactivity.confirm_with_access_advisor`): before a step that
//! cuts a whole principal's access, ask IAM Access Advisor when it last authenticated.

use tracing::{info, warn};

use crate::domain::event::REMEDIATION_FAILED;
use crate::domain::time::fmt_time;
use crate::domain::{
    decide, Decision, Facts, Gate, OutboundEvent, Outcome, Record, Scope, Step, Timestamp,
};
use crate::error::Result;
use crate::ports::{ErrorKind, Iam, PortError, Store};

use super::super::run::Run;
use super::Engine;

/// What Access Advisor said before an access-cutting step.
enum Confirmation {
    /// Not asked: the switch is off, or the step does not cut a whole principal's access.
    NotNeeded,
    /// Asked, and not answered: the failure is recorded and the step waits.
    Unavailable,
    /// The facts with Access Advisor's latest `LastAuthenticated`, and that date in words.
    Seen(Box<Facts>, String),
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// Decides (taking the step's share of the run's budget). With
    /// `inactivity.confirm_with_access_advisor`, a step that would cut a whole principal's access
    /// is decided on facts that include Access Advisor's latest `LastAuthenticated`: a later date
    /// than IAM's counts as use. `None` when no confirmation could be had: the failure is
    /// recorded and the step is not taken this run (fail safe: a role used through a path IAM's
    /// last-used date misses must not be cut off because Access Advisor was unavailable).
    pub(super) async fn decide_confirmed(
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
                let mut decision = run.decide(record, Some(&confirmed), &self.policy, now);
                if decision.step() == look.step() {
                    decision.reason = format!("{}; Access Advisor: {seen}", decision.reason);
                } else {
                    info!(identity = %record.subject, reason = %decision.reason, "Access Advisor shows later use; step not taken");
                }
                Ok(Some(decision))
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
        let (Some(step), Some(facts)) = (look.step(), facts) else {
            return Ok(Confirmation::NotNeeded);
        };
        // Access Advisor reports per principal, not per credential, so it cannot speak for one
        // key or the password; a step the breaker stops needs no confirmation. A resumed step
        // is confirmed like a fresh one.
        if !self.policy.inactivity.confirm_with_access_advisor
            || !step.cuts_access()
            || record.subject.scope != Scope::Whole
            || matches!(look.gate(), Some(Gate::Breaker(_)))
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
}
