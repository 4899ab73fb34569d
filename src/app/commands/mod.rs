//! Operator commands shared by the CLI and the Lambda, over the same engine: this file resolves
//! identities and reads state (`status`, `list`, `history`); `change.rs` holds the commands that
//! change something (`undo`, `approve`, `exempt`, `restore`), `report.rs` the compliance report and
//! `permissions.rs` what `dormant permissions` prints.

use crate::domain::{
    IdentityArg, Principal, PrincipalKind, Record, Stage, Step, Subject, Timestamp,
};

mod change;
mod permissions;
mod report;

use crate::error::{Error, Result};
use crate::ports::{Iam, Store};
pub use permissions::{
    permissions, policy_document, KindPermissions, PermissionsReport, PolicyFor, StepPermissions,
};
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
    /// Turns what the operator typed into a subject, reading IAM for the path when only a name
    /// was given. A deleted identity is found among the tracked records.
    pub async fn resolve(&self, arg: &IdentityArg) -> Result<(Subject, Option<Facts>)> {
        match arg {
            IdentityArg::Subject(subject) => {
                if subject.principal.account != self.account() {
                    return Err(Error::Usage(format!(
                        "{subject} is in account {}, but dormant is running in account {}",
                        subject.principal.account,
                        self.account()
                    )));
                }
                let facts = self
                    .iam
                    .fresh_facts(subject.principal.kind, &subject.principal.name)
                    .await?;
                Ok((subject.clone(), facts))
            }
            IdentityArg::Name { kind, name, scope } => {
                let facts = self.iam.fresh_facts(*kind, name).await?;
                let principal = match &facts {
                    Some(f) => f.principal.clone(),
                    None => self.tracked_principal(*kind, name).await?,
                };
                Ok((
                    Subject {
                        principal,
                        scope: scope.clone(),
                    },
                    facts,
                ))
            }
        }
    }

    async fn tracked_principal(&self, kind: PrincipalKind, name: &str) -> Result<Principal> {
        self.store
            .list(self.account(), None)
            .await?
            .into_iter()
            .map(|r| r.subject.principal)
            .find(|p| p.kind == kind && p.name == name)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}/{name} does not exist in IAM in account {} and dormant has never tracked it",
                    kind.as_str(),
                    self.account()
                ))
            })
    }

    /// `status`: the stored record plus a fresh look (exemption, evidence, what comes next).
    pub async fn status(&self, arg: &IdentityArg, now: Timestamp) -> Result<StatusReport> {
        let (subject, facts) = self.resolve(arg).await?;
        let record = self
            .store
            .load(&subject)
            .await?
            .unwrap_or_else(|| Record::new(subject.clone()));
        if facts.is_none() && record.version == 0 {
            return Err(Error::NotFound(format!("{subject} does not exist in IAM")));
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
        let mut records = self.store.list(self.account(), stage).await?;
        records.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(records.iter().map(StatusReport::from_record).collect())
    }

    pub async fn history(&self, arg: &IdentityArg) -> Result<Vec<HistoryEntry>> {
        let (subject, _) = self.resolve(arg).await?;
        let entries = self.store.history(&subject).await?;
        Ok(entries.iter().map(HistoryEntry::from).collect())
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
    async fn tracked(&self, subject: &Subject) -> Result<Record> {
        self.store
            .load(subject)
            .await?
            .ok_or_else(|| RefusedBecause::NotTracked(subject.id()).into())
    }
}
