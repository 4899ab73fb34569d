//! Operator commands shared by the CLI and the Lambda, over the same engine.

use crate::domain::{
    effect::{all_permissions, ADVISOR_PERMISSIONS, EVALUATE_PERMISSIONS},
    IdentityArg, Principal, PrincipalKind, Record, Stage, Step, Subject, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{Iam, Store};
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
pub fn permissions() -> PermissionsReport {
    let both = |actions: &[&'static str]| KindPermissions {
        role: actions.to_vec(),
        user: actions.to_vec(),
    };
    let mut steps = vec![
        ("evaluate", both(EVALUATE_PERMISSIONS)),
        ("access_advisor", both(ADVISOR_PERMISSIONS)),
    ];
    for (step, kind, actions) in all_permissions() {
        let at = match steps.iter().position(|(name, _)| *name == step.as_str()) {
            Some(at) => at,
            None => {
                steps.push((step.as_str(), KindPermissions::default()));
                steps.len() - 1
            }
        };
        match kind {
            PrincipalKind::Role => steps[at].1.role = actions,
            PrincipalKind::User => steps[at].1.user = actions,
        }
    }
    let mut all: Vec<&'static str> = steps
        .iter()
        .flat_map(|(_, k)| k.role.iter().chain(&k.user).copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    PermissionsReport {
        steps: StepPermissions(steps),
        all,
    }
}

/// What `dormant permissions` prints: the IAM actions of each step, by kind, and all of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PermissionsReport {
    pub steps: StepPermissions,
    pub all: Vec<&'static str>,
}

/// The steps in ladder order (a JSON object whose keys keep that order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPermissions(pub Vec<(&'static str, KindPermissions)>);

impl serde::Serialize for StepPermissions {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (step, kinds) in &self.0 {
            map.serialize_entry(step, kinds)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindPermissions {
    pub role: Vec<&'static str>,
    pub user: Vec<&'static str>,
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

    /// `undo`: reverse exactly what dormant changed, then cool-off.
    pub async fn undo(
        &self,
        arg: &IdentityArg,
        reason: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let (subject, mut facts) = self.resolve(arg).await?;
        let record = self.tracked(&subject).await?;
        // Refusals come before anything is stopped or changed.
        crate::domain::undo(&record, facts.as_ref(), &self.policy, now, reason)?;
        if let Some(intent) = record.pending.as_ref().filter(|i| {
            i.step != Step::Release
                && i.fallback.is_empty()
                && i.last_error.is_none()
                && now < i.not_before(INTENT_LEASE)
        }) {
            // Another run is carrying a step out right now: the release could land before its
            // last call. (Another release in flight, e.g. an earlier undo that died, is safe to
            // repeat: every effect of a release is idempotent.)
            return Err(Error::Rejected(format!(
                "{subject}: {} is being carried out by another run since {}; try again after {}",
                intent.step,
                fmt_time(intent.started_at),
                fmt_time(intent.not_before(INTENT_LEASE))
            )));
        }
        if let Some(intent) = record.pending.as_ref().filter(|i| !i.fallback.is_empty()) {
            if self.policy.dry_run {
                return Err(Error::Rejected(format!(
                    "{subject} has SSM Automation running for its {} step; a dry run cannot stop it",
                    intent.step
                )));
            }
            // An execution finishing after the release would undo the undo; stop it first, then
            // release from what IAM shows once it has stopped.
            self.stop_fallback(intent).await?;
            facts = self
                .iam
                .fresh_facts(subject.principal.kind, &subject.principal.name)
                .await?;
        }
        let d = crate::domain::undo(&record, facts.as_ref(), &self.policy, now, reason)?;
        let after_stage = d.after().map_or(record.stage, |a| a.stage);
        let run = self.start_run(None, now).await?;
        let result = self.carry_out(&run, record, d, now).await;
        let report = self.finish(run).await;
        result?;
        let action = report?.actions.pop();
        let outcome = action.as_ref().map_or(Outcome::Done, |a| a.outcome);
        let stored = self
            .store
            .load(&subject)
            .await?
            .map_or(after_stage, |r| r.stage);
        Ok(CommandReport {
            identity: subject.id(),
            command: "undo",
            outcome,
            stage: stored,
            reason: action.map(|a| a.reason).unwrap_or_default(),
            restored: None,
            not_restored: None,
        })
    }

    /// `approve`: record the caller's approval of a pending deletion; the next tick deletes.
    pub async fn approve(
        &self,
        arg: &IdentityArg,
        reason: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let reason = required_reason(reason)?;
        let (subject, _) = self.resolve(arg).await?;
        let record = self.tracked(&subject).await?;
        let mut after = crate::domain::approve(&record, &self.policy, &self.actor, now)?;
        after.reason = format!("{}: {reason}", after.reason);
        let run = self.start_run(None, now).await?;
        if !self.policy.dry_run {
            self.store.save(&after).await?;
            self.audit(&subject, "approve", Outcome::Done, &after.reason, &run, now)
                .await?;
        }
        Ok(CommandReport {
            identity: subject.id(),
            command: "approve",
            outcome: if self.policy.dry_run {
                Outcome::DryRun
            } else {
                Outcome::Done
            },
            stage: after.stage,
            reason: after.reason,
            restored: None,
            not_restored: None,
        })
    }

    /// `exempt`: write the exemption tags, then evaluate at once (a quarantined identity is
    /// released).
    pub async fn exempt(
        &self,
        arg: &IdentityArg,
        until: chrono::NaiveDate,
        reason: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        refuse_credential_exemption(match arg {
            IdentityArg::Name { scope, .. } => scope,
            IdentityArg::Subject(subject) => &subject.scope,
        })?;
        let Some(until_instant) = exemption::parse_until(&until.format("%Y-%m-%d").to_string())
        else {
            return Err(Error::Usage(format!("--until {until} is not a date")));
        };
        if until_instant <= now {
            return Err(Error::Rejected(format!(
                "--until {until} is in the past; an exemption must end in the future"
            )));
        }
        if until_instant - now > self.policy.exemptions.max_duration {
            return Err(Error::Rejected(format!(
                "--until {until} is more than {} days away (exemptions.max_days)",
                self.policy.exemptions.max_duration.num_days()
            )));
        }
        if reason.trim().is_empty() {
            return Err(Error::Usage("--reason must not be empty".to_string()));
        }
        check_tag_value("--reason", reason)?;
        let (subject, facts) = self.resolve(arg).await?;
        let Some(facts) = facts else {
            return Err(Error::NotFound(format!("{subject} does not exist in IAM")));
        };
        if let Some(why) = exemption::protection(&facts.principal, &self.policy.exemptions) {
            return Err(Error::Rejected(format!(
                "{subject} is protected ({why}); dormant never changes it, not even to tag it"
            )));
        }
        let whole = Subject::whole(facts.principal.clone());
        let reason_text = format!("exempted until {until}: {reason}");
        if self.policy.dry_run {
            return Ok(CommandReport {
                identity: whole.id(),
                command: "exempt",
                outcome: Outcome::DryRun,
                stage: self
                    .store
                    .load(&whole)
                    .await?
                    .map_or(Stage::Clean, |r| r.stage),
                reason: reason_text,
                restored: None,
                not_restored: None,
            });
        }
        let tags = vec![
            (tag::TAG_EXEMPT.to_string(), "true".to_string()),
            (
                tag::TAG_EXEMPT_UNTIL.to_string(),
                until.format("%Y-%m-%d").to_string(),
            ),
            (
                tag::TAG_EXEMPT_REASON.to_string(),
                reason.trim().to_string(),
            ),
        ];
        // IAM keeps one spelling per key: an owner's `Dormant:Exempt` would keep its case and the
        // exemption would not count (only the exact key does). Remove such spellings first.
        let miscased: Vec<String> = [
            tag::TAG_EXEMPT,
            tag::TAG_EXEMPT_UNTIL,
            tag::TAG_EXEMPT_REASON,
        ]
        .iter()
        .filter_map(|k| crate::domain::tag::miscased(&facts.tags, k).map(str::to_string))
        .collect();
        if !miscased.is_empty() {
            self.iam
                .apply(
                    &facts.principal,
                    &crate::domain::Effect::RemoveTags { keys: miscased },
                )
                .await?;
        }
        self.iam
            .apply(&facts.principal, &crate::domain::Effect::PutTags { tags })
            .await?;
        let run = self.start_run(None, now).await?;
        self.audit(&whole, "exempt", Outcome::Done, &reason_text, &run, now)
            .await?;
        // Evaluate now, so a quarantined identity is released at once.
        self.evaluate(facts.principal.kind, &facts.principal.name, None, now)
            .await?;
        let stage = self
            .store
            .load(&whole)
            .await?
            .map_or(Stage::Clean, |r| r.stage);
        Ok(CommandReport {
            identity: whole.id(),
            command: "exempt",
            outcome: Outcome::Done,
            stage,
            reason: reason_text,
            restored: None,
            not_restored: None,
        })
    }

    /// `restore`: recreate a deleted role or user from its latest snapshot.
    pub async fn restore(
        &self,
        arg: &IdentityArg,
        why: &str,
        now: Timestamp,
    ) -> Result<CommandReport> {
        let why = required_reason(why)?;
        let (subject, _) = self.resolve(arg).await?;
        if subject.scope != Scope::Whole {
            return Err(Error::Rejected(format!(
                "{subject}: access keys and passwords cannot be recreated; create a new one for the user"
            )));
        }
        let record = self.tracked(&subject).await?;
        if record.stage != Stage::Deleted {
            return Err(Error::Rejected(format!(
                "{subject} is {}, not deleted: there is nothing to restore{}",
                record.stage,
                if record.stage.is_on_ladder() {
                    " (use `dormant undo`)"
                } else {
                    ""
                }
            )));
        }
        let snapshot = self.store.latest_snapshot(&subject).await?.ok_or_else(|| {
            Error::Rejected(format!(
                "{subject} has no snapshot: it was not deleted by dormant ({})",
                record.reason
            ))
        })?;
        if self.policy.dry_run {
            return Ok(CommandReport {
                identity: subject.id(),
                command: "restore",
                outcome: Outcome::DryRun,
                stage: record.stage,
                reason: format!(
                    "would restore from the snapshot of {}",
                    fmt_time(snapshot.taken_at)
                ),
                restored: None,
                not_restored: None,
            });
        }
        let report = match self.iam.restore(&snapshot).await? {
            RestoreOutcome::Restored(report) => report,
            RestoreOutcome::NameTaken { unique_id } => {
                return Err(RefusedBecause::NameTaken(subject.id(), unique_id).into())
            }
        };
        let reason = format!(
            "restored by {} ({why}){} from the snapshot of {}; not restored: {}",
            self.actor,
            report
                .unique_id
                .as_deref()
                .map(|id| format!(" as unique id {id}"))
                .unwrap_or_default(),
            fmt_time(snapshot.taken_at),
            if report.not_restored.is_empty() {
                "nothing".to_string()
            } else {
                report.not_restored.join("; ")
            }
        );
        let mut after = record.entering(Stage::Released, now, reason.clone());
        after.released_at = Some(now);
        after.keys_deactivated.clear();
        after.approval = None;
        // The record follows the restored identity (IAM gave it a new unique id), so the next
        // run does not take it for a stranger re-created under the name.
        after.unique_id = report.unique_id.clone();
        after.login_profile_created_at = None;
        self.store.save(&after).await?;
        // The restore marker only lets an interrupted restore find its own identity; once the
        // record says released there is nothing left to resume, and the owner gets exactly their
        // tags back. Not before: a crash in between would leave a restored identity that a rerun
        // could not tell from a stranger's. A failure here leaves a harmless tag: said, not fatal.
        let mut not_restored = report.not_restored;
        let unmark = Effect::RemoveTags {
            keys: vec![RESTORED_FROM_TAG.to_string()],
        };
        if let Err(e) = self.iam.apply(&subject.principal, &unmark).await {
            warn!(identity = %subject, error = %e, "restore marker tag not removed");
            not_restored.push(format!(
                "tag {RESTORED_FROM_TAG}: dormant's restore marker could not be removed ({e}); remove it by hand"
            ));
        }
        let run = self.start_run(None, now).await?;
        self.audit(&subject, "restore", Outcome::Done, &reason, &run, now)
            .await?;
        self.publish(vec![crate::domain::OutboundEvent::for_record(
            "Identity Restored",
            &after,
            &reason,
        )])
        .await;
        Ok(CommandReport {
            identity: subject.id(),
            command: "restore",
            outcome: Outcome::Done,
            stage: Stage::Released,
            reason,
            restored: Some(report.restored),
            not_restored: Some(not_restored),
        })
    }
}

/// One row of the compliance report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportRow {
    pub account: String,
    pub identity: String,
    pub kind: &'static str,
    pub path: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub evidence: String,
    pub days_inactive: i64,
    pub stage: Stage,
    pub next_step: Option<crate::domain::Step>,
    pub next_due_at: Option<String>,
    pub exempt: bool,
    pub exemption: Option<String>,
    pub exempt_until: Option<String>,
    pub exempt_reason: Option<String>,
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// The compliance report: every role and user of the account from one bulk read, with what
    /// dormant knows of each, handed to `row` one at a time (nothing is buffered per identity).
    /// Credential-level subjects dormant tracks get rows of their own.
    pub async fn compliance_report(
        &self,
        now: Timestamp,
        mut row: impl FnMut(ReportRow) -> Result<()>,
    ) -> Result<usize> {
        let bulk = self.iam.bulk_facts().await?;
        let mut tracked: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
        for r in self.store.list(self.account(), None).await? {
            tracked
                .entry(r.subject.principal.arn())
                .or_default()
                .push(r);
        }
        let budget = Budget::default();
        let mut rows = 0;
        for facts in &bulk {
            let whole = Subject::whole(facts.principal.clone());
            let records = tracked.remove(&facts.principal.arn()).unwrap_or_default();
            let record = records
                .iter()
                .find(|r| r.subject == whole)
                .cloned()
                .unwrap_or_else(|| Record::new(whole.clone()));
            let d = decide(&record, Some(facts), &self.policy, &budget, now);
            let activity = facts.activity(&Scope::Whole);
            let (until, why) = match &d.exemption {
                Some(crate::domain::Exemption::Tag { until, reason, .. }) => {
                    (until.map(fmt_time), reason.clone())
                }
                _ => (None, None),
            };
            let next = d.step().map(|s| (s, now)).or(d.next);
            row(ReportRow {
                account: self.account().to_string(),
                identity: whole.id(),
                kind: whole.kind().as_str(),
                path: facts.principal.path.clone(),
                created_at: fmt_time(facts.created_at),
                last_used_at: activity.as_ref().and_then(|a| a.last_used_at).map(fmt_time),
                evidence: activity
                    .as_ref()
                    .map(|a| a.evidence.describe())
                    .unwrap_or_default(),
                days_inactive: activity.map_or(0, |a| (now - a.since).num_days()),
                stage: record.stage,
                next_step: next.map(|(s, _)| s),
                next_due_at: next.map(|(_, t)| fmt_time(t)),
                exempt: d.exemption.is_some(),
                exemption: d.exemption.as_ref().map(|e| e.describe()),
                exempt_until: until,
                exempt_reason: why,
            })?;
            rows += 1;
            for r in records.iter().filter(|r| r.subject != whole) {
                row(record_row(self.account(), r, &facts.principal.path))?;
                rows += 1;
            }
        }
        // Tracked identities IAM no longer lists (deleted by dormant or by someone else).
        for r in tracked.values().flatten() {
            row(record_row(self.account(), r, &r.subject.principal.path))?;
            rows += 1;
        }
        Ok(rows)
    }
}

fn record_row(account: &str, r: &Record, path: &str) -> ReportRow {
    ReportRow {
        account: account.to_string(),
        identity: r.subject.id(),
        kind: r.subject.kind().as_str(),
        path: path.to_string(),
        created_at: String::new(),
        last_used_at: r.last_used_at.map(fmt_time),
        evidence: String::new(),
        days_inactive: 0,
        stage: r.stage,
        next_step: r.next_step,
        next_due_at: r.next_due_at.map(fmt_time),
        exempt: r.stage == Stage::Exempt,
        exemption: None,
        exempt_until: None,
        exempt_reason: None,
    }
}
