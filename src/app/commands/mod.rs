//! Operator commands shared by the CLI and the Lambda, over the same engine: this file resolves
//! identities and reads state (`status`, `list`, `history`); `change.rs` holds the commands that
//! change something (`undo`, `approve`, `exempt`, `restore`), `report.rs` the compliance report, `plan.rs`
//! the calendar of `dormant plan`, and `permissions.rs` what `dormant permissions` prints.

use crate::domain::{
    IdentityArg, Principal, PrincipalKind, Record, Stage, Step, Subject, Timestamp,
};

mod change;
mod exempt;
mod permissions;
mod plan;
mod report;
mod resolve;

use crate::error::{Error, Result};
use crate::ports::{Iam, Store};
pub use permissions::{
    permissions, policy_document, KindPermissions, PermissionsReport, PolicyFor, StepPermissions,
};
pub use plan::{calendar, PlanRow};
pub use report::ReportRow;
use tracing::warn;

use super::output::{HistoryEntry, StatusReport};
use super::Engine;
use crate::domain::ladder::INTENT_LEASE;
use crate::domain::tag::{self, RESTORED_FROM_TAG};
use crate::domain::time::fmt_time;
use crate::domain::{
    decide, exemption, Budget, Effect, Facts, Outcome, RefusedBecause, RestoreOutcome, Scope,
};

impl<I: Iam, S: Store> Engine<I, S> {
    /// `status`: the stored record plus a fresh look (exemption, evidence, what comes next).
    pub async fn status(&self, arg: &IdentityArg, now: Timestamp) -> Result<StatusReport> {
        let (subject, facts) = self.resolve(arg).await?;
        let record = self
            .store
            .load(&subject)
            .await?
            .unwrap_or_else(|| Record::new(subject.clone()));
        if facts.is_none() && record.version == 0 {
            return Err(Error::NotFound(format!(
                "{} does not exist in IAM",
                subject.short()
            )));
        }
        let breaker = self.store.breaker(self.account()).await?;
        let budget = Budget {
            tripped: breaker.tripped,
            quarantines_in_window: breaker.quarantines_within_day(now),
            identities_in_account: breaker.identities,
            actions_this_run: 0,
        };
        let decision = decide(&record, facts.as_ref(), &self.policy, &budget, now);
        Ok(StatusReport::from_decision(&record, &decision, now))
    }

    pub async fn list(&self, stage: Option<Stage>) -> Result<Vec<StatusReport>> {
        self.list_filtered(&ListFilter {
            stage,
            ..ListFilter::default()
        })
        .await
    }

    pub async fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<StatusReport>> {
        let mut records = self.store.list(self.account(), filter.stage).await?;
        records.retain(|r| filter.admits(r));
        records.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(records.iter().map(StatusReport::from_record).collect())
    }

    /// The records a tick at `now` would delete: the operator is asked first.
    pub async fn due_deletions(&self, now: Timestamp) -> Result<Vec<Record>> {
        let mut due = self.store.due(self.account(), now).await?;
        due.retain(|r| r.next_step == Some(Step::Delete));
        due.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(due)
    }

    /// Whether a real sweep now would be the account's first without a dry run before it: no
    /// dry-run sweep ever ran, and no real one either (the breaker item is written by those).
    pub async fn first_real_sweep(&self) -> Result<bool> {
        Ok(self.store.last_dry_run(self.account()).await?.is_none()
            && self.store.breaker(self.account()).await?.version == 0)
    }

    pub async fn history(&self, arg: &IdentityArg) -> Result<Vec<HistoryEntry>> {
        let (subject, _) = self.resolve(arg).await?;
        let entries = self.store.history(&subject).await?;
        Ok(entries.iter().map(HistoryEntry::from).collect())
    }
}

/// `list`'s filters; they combine. The account filter picks engines, so it is not here.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub stage: Option<Stage>,
    pub kind: Option<PrincipalKind>,
    /// Only records with a step due strictly before this.
    pub due_before: Option<Timestamp>,
    /// Matched against NAME, or against PATH/NAME (with or without the leading `/`) when the
    /// glob has a `/`.
    pub name: Option<globset::GlobMatcher>,
}

impl ListFilter {
    fn admits(&self, r: &Record) -> bool {
        let p = &r.subject.principal;
        let name_ok = self.name.as_ref().is_none_or(|g| {
            if g.glob().glob().contains('/') {
                let full = p.path_and_name();
                g.is_match(&full) || g.is_match(full.trim_start_matches('/'))
            } else {
                g.is_match(&p.name)
            }
        });
        self.kind.is_none_or(|k| p.kind == k)
            && self
                .due_before
                .is_none_or(|t| r.next_due_at.is_some_and(|due| due < t))
            && name_ok
    }
}

/// The outcome of an operator command that changes something.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandReport {
    pub identity: String,
    pub command: &'static str,
    pub outcome: Outcome,
    pub stage: Stage,
    pub reason: String,
    /// `restore` only: what was recreated, and what could not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_restored: Option<Vec<String>>,
}

/// Commands that change what dormant does take a reason, for the audit trail.
pub fn required_reason(reason: &str) -> Result<&str> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Usage(
            "--reason must say why (it is recorded in the audit trail with who ran the command)"
                .to_string(),
        ));
    }
    Ok(reason)
}

/// Exemption tags go on the role or user: an access key or password carries no tags of its own,
/// so exempting one would exempt (and release) the whole user. Refused, saying so.
fn refuse_credential_exemption(scope: &Scope) -> Result<()> {
    match scope {
        Scope::Whole => Ok(()),
        Scope::AccessKey(_) | Scope::Password => Err(Error::Usage(
            "exempt takes a role or user: an access key or console password has no tags of its \
             own, so its exemption would exempt (and release) the whole user; exempt the user \
             (`dormant exempt user/NAME …`) if that is what you mean"
                .to_string(),
        )),
    }
}

/// IAM tag values: up to 256 of letters, digits, spaces and `_ . : / = + - @`.
fn check_tag_value(field: &str, value: &str) -> Result<()> {
    let ok = value.len() <= 256
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{field} '{value}': IAM tag values allow up to 256 letters, digits, spaces and _ . : / = + - @"
        )))
    }
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// The stored record, or the refusal of an untracked subject: why dormant never took it
    /// on (its exemption, when it has one) and what that means for the command (`so`).
    async fn tracked(
        &self,
        subject: &Subject,
        facts: Option<&Facts>,
        so: &str,
        now: Timestamp,
    ) -> Result<Record> {
        if let Some(record) = self.store.load(subject).await? {
            return Ok(record);
        }
        let so = match self.exemption_of(&Record::new(subject.clone()), facts, now) {
            Some(why) => format!("it is {why}, so dormant takes no step on it and {so}"),
            None => so.to_string(),
        };
        Err(RefusedBecause::NotTracked(subject.id(), so).into())
    }

    /// The exemption that holds for the record's subject now, in words; `None` when it has
    /// none or is gone from IAM.
    fn exemption_of(
        &self,
        record: &Record,
        facts: Option<&Facts>,
        now: Timestamp,
    ) -> Option<String> {
        let facts = facts?;
        decide(record, Some(facts), &self.policy, &Budget::default(), now)
            .exemption
            .map(|e| e.describe())
    }
}
