//! The compliance report: every role and user, with what dormant knows of each.

use super::*;

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
            let decision = decide(&record, Some(facts), &self.policy, &budget, now);
            let activity = facts.activity(&Scope::Whole);
            let (until, why) = match &decision.exemption {
                Some(crate::domain::Exemption::Tag { until, reason, .. }) => {
                    (until.map(fmt_time), reason.clone())
                }
                _ => (None, None),
            };
            let next = decision.step().map(|s| (s, now)).or(decision.next);
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
                exempt: decision.exemption.is_some(),
                exemption: decision.exemption.as_ref().map(|e| e.describe()),
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
