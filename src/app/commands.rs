//! Operator commands shared by the CLI and the Lambda, over the same engine.

use crate::domain::{
    effect::{all_permissions, EVALUATE_PERMISSIONS},
    IdentityArg, Principal, PrincipalKind, Record, Stage, Subject, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{Iam, Store};

use super::output::{HistoryEntry, StatusReport};
use super::Engine;
use crate::domain::{decide, Budget, Facts};

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
        let d = decide(&record, facts.as_ref(), &self.policy, &budget, now);
        Ok(StatusReport::from_decision(&record, &d, now))
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

/// `permissions`: the IAM actions each step needs, per principal kind.
pub fn permissions() -> serde_json::Value {
    let mut steps = serde_json::Map::new();
    let mut all: Vec<&str> = EVALUATE_PERMISSIONS.to_vec();
    steps.insert(
        "evaluate".to_string(),
        serde_json::json!({ "role": EVALUATE_PERMISSIONS, "user": EVALUATE_PERMISSIONS }),
    );
    for (step, kind, actions) in all_permissions() {
        let entry = steps
            .entry(step.as_str().to_string())
            .or_insert_with(|| serde_json::json!({}));
        entry[kind.as_str()] = serde_json::json!(actions);
        all.extend(actions);
    }
    all.sort_unstable();
    all.dedup();
    serde_json::json!({ "steps": steps, "all": all })
}
