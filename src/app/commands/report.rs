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
    /// Access-key and password rows (CIS 1.12): the key id (its credential-report slot,
    /// `slot1`/`slot2`, when IAM would not name it) or `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Access-key and password rows of credentials IAM still has: whether it is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl<I: Iam, S: Store> Engine<I, S> {
    /// The compliance report: every role and user of the account from one bulk read, with what
    /// dormant knows of each, handed to `row` one at a time (nothing is buffered per identity).
    /// Each access key and console password gets a row of its own (CIS 1.12), as does every
    /// credential dormant tracks that IAM no longer has. Naming a user's keys by id costs one
    /// `ListAccessKeys` per user with keys.
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
        let mut rows = 0;
        for facts in &bulk {
            let whole = Subject::whole(facts.principal.clone());
            let records = tracked.remove(&facts.principal.arn()).unwrap_or_default();
            let record = records
                .iter()
                .find(|r| r.subject == whole)
                .cloned()
                .unwrap_or_else(|| Record::new(whole.clone()));
            row(self.live_row(&record, facts, facts.created_at, now))?;
            rows += 1;
            let mut shown = vec![whole.clone()];
            if facts.principal.kind == PrincipalKind::User {
                let facts = self.with_key_ids(facts).await;
                let keys = facts.access_keys.iter().map(|k| {
                    let subject = Subject::access_key(facts.principal.clone(), &k.id.to_string());
                    (subject, k.created_at, k.active)
                });
                let password = facts.login_profile.as_ref().map(|p| {
                    (
                        Subject::password(facts.principal.clone()),
                        p.created_at,
                        true,
                    )
                });
                for (subject, created, active) in keys.chain(password) {
                    let record = records
                        .iter()
                        .find(|r| r.subject == subject)
                        .cloned()
                        .unwrap_or_else(|| Record::new(subject.clone()));
                    let mut line = self.live_row(&record, &facts, created, now);
                    line.active = Some(active);
                    row(line)?;
                    rows += 1;
                    shown.push(subject);
                }
            }
            for r in records.iter().filter(|r| !shown.contains(&r.subject)) {
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

impl<I: Iam, S: Store> Engine<I, S> {
    /// The row of a subject IAM has: its record's stage, and what `decide` says of it now.
    fn live_row(
        &self,
        record: &Record,
        facts: &Facts,
        created: Timestamp,
        now: Timestamp,
    ) -> ReportRow {
        let subject = &record.subject;
        let decision = decide(record, Some(facts), &self.policy, &Budget::default(), now);
        let activity = facts.activity(&subject.scope);
        let (until, why) = match &decision.exemption {
            Some(crate::domain::Exemption::Tag { until, reason, .. }) => {
                (until.map(fmt_time), reason.clone())
            }
            _ => (None, None),
        };
        let next = decision.step().map(|s| (s, now)).or(decision.next);
        ReportRow {
            account: self.account().to_string(),
            identity: subject.id(),
            kind: subject.kind().as_str(),
            path: facts.principal.path.clone(),
            created_at: fmt_time(created),
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
            credential_id: credential_id(&subject.scope),
            active: None,
        }
    }

    /// The bulk facts with the user's keys named by id (`ListAccessKeys`), so their rows name
    /// the key an operator can act on; by report slot when that cannot be matched or read.
    pub(super) async fn with_key_ids(&self, facts: &Facts) -> Facts {
        if !facts.has_slot_keys() {
            return facts.clone();
        }
        match self.iam.access_keys(&facts.principal.name).await {
            Ok(listed) => facts.with_key_ids(&listed).unwrap_or_else(|| facts.clone()),
            Err(e) => {
                tracing::warn!(user = %facts.principal.short(), error = %e, "access keys listed by report slot");
                facts.clone()
            }
        }
    }
}

fn credential_id(scope: &Scope) -> Option<String> {
    match scope {
        Scope::Whole => None,
        Scope::AccessKey(id) => Some(id.clone()),
        Scope::Password => Some("password".to_string()),
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
        credential_id: credential_id(&r.subject.scope),
        active: None,
    }
}
