//! Security Hub as the dashboard (docs/design.md, 'Security Hub'): the content of dormant's own
//! ASFF finding for a subject, and the workflow updates of the findings that nominated it. Pure:
//! the adapter (`crate::adapters::security_hub`) only serialises and calls.
//!
//! One finding per subject (its `Id` is fixed by the subject's stable id, so every import
//! replaces it), in the identity's own account: with the `default` product, `BatchImportFindings`
//! accepts a finding only from the account its `AwsAccountId` names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::Record;
use super::stage::{Stage, Step};
use super::subject::{PrincipalKind, Scope, Subject};
use super::time::{fmt_time, Timestamp};

/// The ASFF version every finding declares.
pub const SCHEMA_VERSION: &str = "2018-10-08";
/// `Types`: namespace / category / classifier of the ASFF taxonomy.
pub const FINDING_TYPE: &str =
    "Software and Configuration Checks/AWS Security Best Practices/Unused IAM Credentials";
/// `BatchImportFindings` and `BatchUpdateFindings` take at most 100 findings per call.
pub const FINDINGS_PER_CALL: usize = 100;
/// How many nominating findings a record remembers (the latest).
pub const MAX_NOMINATING_FINDINGS: usize = 10;

/// A Security Hub finding that nominated a subject: what `BatchUpdateFindings` needs to find it
/// again. Its region is the one in `product_arn`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HubFindingRef {
    pub id: String,
    pub product_arn: String,
}

impl HubFindingRef {
    /// The region of the finding's hub: the fourth field of its product ARN
    /// (`arn:aws:securityhub:us-east-1::product/aws/securityhub`).
    pub fn region(&self) -> Option<&str> {
        self.product_arn.split(':').nth(3).filter(|r| !r.is_empty())
    }
}

/// `Severity.Label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeverityLabel {
    Informational,
    Low,
    Medium,
    High,
}

impl SeverityLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            SeverityLabel::Informational => "INFORMATIONAL",
            SeverityLabel::Low => "LOW",
            SeverityLabel::Medium => "MEDIUM",
            SeverityLabel::High => "HIGH",
        }
    }
}

/// `Workflow.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowStatus {
    New,
    Notified,
    Resolved,
}

impl WorkflowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::New => "NEW",
            WorkflowStatus::Notified => "NOTIFIED",
            WorkflowStatus::Resolved => "RESOLVED",
        }
    }
}

/// `RecordState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordState {
    Active,
    Archived,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Active => "ACTIVE",
            RecordState::Archived => "ARCHIVED",
        }
    }
}

/// Severity rises with the stage: the closer to deletion, the more urgent for the owner. Off the
/// ladder the finding is archived and informational.
pub fn severity(stage: Stage) -> SeverityLabel {
    match stage {
        Stage::Noticed => SeverityLabel::Low,
        Stage::Quarantined => SeverityLabel::Medium,
        Stage::KeysDeactivated | Stage::PendingDelete => SeverityLabel::High,
        Stage::Clean | Stage::Deleted | Stage::Released | Stage::Exempt => {
            SeverityLabel::Informational
        }
    }
}

/// `NEW` while only noticed, `NOTIFIED` once access is cut (the owner has been told by the tag,
/// the events and now the missing access), `RESOLVED` off the ladder.
pub fn workflow(stage: Stage) -> WorkflowStatus {
    match stage {
        Stage::Noticed => WorkflowStatus::New,
        Stage::Quarantined | Stage::KeysDeactivated | Stage::PendingDelete => {
            WorkflowStatus::Notified
        }
        Stage::Clean | Stage::Deleted | Stage::Released | Stage::Exempt => WorkflowStatus::Resolved,
    }
}

pub fn record_state(stage: Stage) -> RecordState {
    if stage.is_on_ladder() {
        RecordState::Active
    } else {
        RecordState::Archived
    }
}

/// One ASFF resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffResource {
    /// `AwsIamRole`, `AwsIamUser` or `AwsIamAccessKey`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The identity's ARN; for a key, `AWS::IAM::AccessKey:<id>` (keys have no ARN).
    pub id: String,
    pub partition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<AccessKeyDetails>,
}

/// `Details.AwsIamAccessKey` of a key resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyDetails {
    pub access_key_id: String,
    pub principal_name: String,
    pub principal_type: String,
    pub account_id: String,
}

/// dormant's finding about one subject, in ASFF. Serialises to the ASFF field names (the unit
/// tests hold it to the required fields); the adapter maps each field to the SDK's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffFinding {
    pub schema_version: String,
    pub id: String,
    pub product_arn: String,
    pub product_name: String,
    pub company_name: String,
    pub generator_id: String,
    pub aws_account_id: String,
    pub region: String,
    pub types: Vec<String>,
    pub first_observed_at: String,
    pub last_observed_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub severity: AsffSeverity,
    pub title: String,
    pub description: String,
    pub remediation: AsffRemediation,
    pub product_fields: BTreeMap<String, String>,
    pub resources: Vec<AsffResource>,
    pub workflow: AsffWorkflow,
    pub record_state: RecordState,
    pub finding_provider_fields: AsffProviderFields,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffSeverity {
    pub label: SeverityLabel,
    /// The stage, as dormant names it.
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRemediation {
    pub recommendation: AsffRecommendation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRecommendation {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffWorkflow {
    pub status: WorkflowStatus,
}

/// Severity and types again, where a finding provider updates them: Security Hub takes an
/// import's top-level `Severity` only when it creates the finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffProviderFields {
    pub severity: AsffSeverity,
    pub types: Vec<String>,
}

/// A `BatchUpdateFindings` change: a workflow status and a note on one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowUpdate {
    pub finding: HubFindingRef,
    pub status: WorkflowStatus,
    pub note: String,
}

/// What one committed change of a subject tells Security Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubReport {
    pub subject: Subject,
    /// When the change was committed.
    pub at: Timestamp,
    pub finding: AsffFinding,
    /// Security Hub ignores `Workflow` in an import that updates a finding: a change of
    /// dormant's own finding's status, and every nominating finding's, goes through
    /// `BatchUpdateFindings`.
    pub updates: Vec<WorkflowUpdate>,
}

/// A finding Security Hub did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFailure {
    pub finding_id: String,
    pub error: String,
}

/// Where dormant's findings go: the hub of the identity's account in `region`.
#[derive(Debug, Clone, Copy)]
pub struct HubTarget<'a> {
    pub partition: &'a str,
    pub region: &'a str,
}

impl HubTarget<'_> {
    /// The `default` product of `account`: the one a custom integration imports as.
    pub fn product_arn(&self, account: &str) -> String {
        format!(
            "arn:{}:securityhub:{}:{account}:product/{account}/default",
            self.partition, self.region
        )
    }
}

/// dormant's finding id for a subject: stable across imports (the account and the subject's
/// partition-free id, its credential included), so each import replaces the last.
pub fn finding_id(subject: &Subject) -> String {
    format!("dormant/{}", subject.stable_id())
}

/// What Security Hub learns from a change of `before` into `after` (a committed step, or a
/// bookkeeping change that took the subject off the ladder). `reason` is why it happened.
pub fn report(
    before: Stage,
    after: &Record,
    step: Option<Step>,
    reason: &str,
    target: HubTarget<'_>,
    now: Timestamp,
) -> HubReport {
    let subject = &after.subject;
    let account = subject.principal.account.as_str();
    let stage = after.stage;
    let product_arn = target.product_arn(account);
    let severity = AsffSeverity {
        label: severity(stage),
        original: stage.as_str().to_string(),
    };
    let types = vec![FINDING_TYPE.to_string()];
    let noticed = after.noticed_at.unwrap_or(now).min(now);
    let finding = AsffFinding {
        schema_version: SCHEMA_VERSION.to_string(),
        id: finding_id(subject),
        product_arn: product_arn.clone(),
        product_name: "dormant".to_string(),
        company_name: "dormant".to_string(),
        generator_id: format!("dormant/{}", subject.kind().as_str()),
        aws_account_id: account.to_string(),
        region: target.region.to_string(),
        types: types.clone(),
        first_observed_at: asff_time(noticed),
        last_observed_at: asff_time(now),
        created_at: asff_time(noticed),
        updated_at: asff_time(now),
        severity: severity.clone(),
        title: clip(&title(subject, stage), 256),
        description: clip(&description(after, step, reason), 1024),
        remediation: AsffRemediation {
            recommendation: AsffRecommendation {
                text: clip(&recommendation(subject), 512),
            },
        },
        product_fields: product_fields(after),
        resources: resources(subject),
        workflow: AsffWorkflow {
            status: workflow(stage),
        },
        record_state: record_state(stage),
        finding_provider_fields: AsffProviderFields { severity, types },
    };
    let mut updates = Vec::new();
    // An import that creates the finding sets its status; one that re-activates an archived
    // finding has Security Hub reset it to NEW. Only a change along the ladder needs an update.
    if before.is_on_ladder() && workflow(before) != workflow(stage) {
        updates.push(WorkflowUpdate {
            finding: HubFindingRef {
                id: finding.id.clone(),
                product_arn,
            },
            status: workflow(stage),
            note: clip(&note(subject, stage, after), 512),
        });
    }
    // The findings that nominated the subject: NOTIFIED while it is on the ladder, RESOLVED
    // once deleted or released. A note with every change says where it stands.
    let nominated_status = if stage.is_on_ladder() {
        WorkflowStatus::Notified
    } else {
        WorkflowStatus::Resolved
    };
    for nominating in &after.hub_findings {
        updates.push(WorkflowUpdate {
            finding: nominating.clone(),
            status: nominated_status,
            note: clip(&note(subject, stage, after), 512),
        });
    }
    HubReport {
        subject: subject.clone(),
        at: now,
        finding,
        updates,
    }
}

/// ASFF timestamps: RFC 3339, UTC, milliseconds.
pub fn asff_time(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn what(subject: &Subject) -> String {
    let p = &subject.principal;
    let name = p.path_and_name();
    let name = name.trim_start_matches('/');
    match (&subject.scope, p.kind) {
        (Scope::Whole, PrincipalKind::Role) => format!("IAM role {name}"),
        (Scope::Whole, PrincipalKind::User) => format!("IAM user {name}"),
        (Scope::AccessKey(key), _) => format!("access key {key} of IAM user {name}"),
        (Scope::Password, _) => format!("console password of IAM user {name}"),
    }
}

fn stage_words(subject: &Subject, stage: Stage) -> &'static str {
    match stage {
        Stage::Noticed => "noticed, to be quarantined",
        Stage::Quarantined => "quarantined (deny-all policy attached)",
        Stage::KeysDeactivated => match subject.scope {
            Scope::AccessKey(_) => "deactivated",
            Scope::Whole | Scope::Password => "quarantined, access keys deactivated",
        },
        Stage::PendingDelete => "awaiting approval to delete",
        Stage::Deleted => "deleted",
        Stage::Released => "released (in use again, or undone)",
        Stage::Exempt => "exempt",
        Stage::Clean => "no longer tracked",
    }
}

fn title(subject: &Subject, stage: Stage) -> String {
    format!("Unused {}: {}", what(subject), stage_words(subject, stage))
}

fn description(after: &Record, step: Option<Step>, reason: &str) -> String {
    let subject = &after.subject;
    let last_used = match after.last_used_at {
        Some(t) => format!("last used {}", fmt_time(t)),
        None => "no use on record".to_string(),
    };
    let since = after
        .stage_since
        .map(|t| format!(" since {}", fmt_time(t)))
        .unwrap_or_default();
    let mut text = format!(
        "dormant: {} ({}; {last_used}). Stage {}{since}",
        what(subject),
        subject.id(),
        after.stage,
    );
    if let Some(step) = step {
        text.push_str(&format!(" after the {step} step"));
    }
    text.push_str(&format!(": {reason}."));
    match (after.next_step, after.next_due_at) {
        (Some(next), Some(at)) => text.push_str(&format!(" Next: {next} at {}.", fmt_time(at))),
        (Some(next), None) => text.push_str(&format!(" Next: {next}.")),
        (None, _) => {}
    }
    text
}

fn recommendation(subject: &Subject) -> String {
    format!(
        "If it is still needed: use it (dormant releases what is used again), run `dormant undo {} --reason ...`, or tag the {} dormant:exempt=true with dormant:exempt-until (YYYY-MM-DD) and dormant:exempt-reason.",
        subject.short(),
        subject.principal.kind.as_str()
    )
}

fn note(subject: &Subject, stage: Stage, after: &Record) -> String {
    let next = match (after.next_step, after.next_due_at) {
        (Some(next), Some(at)) => format!("; next: {next} at {}", fmt_time(at)),
        _ => String::new(),
    };
    format!(
        "dormant: {} {}{next}",
        subject.short(),
        stage_words(subject, stage)
    )
}

fn product_fields(after: &Record) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        fields.insert(format!("dormant/{k}"), v);
    };
    put("Subject", after.subject.id());
    put("Kind", after.subject.kind().as_str().to_string());
    put("Stage", after.stage.as_str().to_string());
    if let Some(next) = after.next_step {
        put("NextStep", next.as_str().to_string());
    }
    if let Some(at) = after.next_due_at {
        put("NextStepAt", fmt_time(at));
    }
    if let Some(at) = after.last_used_at {
        put("LastUsedAt", fmt_time(at));
    }
    fields
}

fn resources(subject: &Subject) -> Vec<AsffResource> {
    let p = &subject.principal;
    let identity = AsffResource {
        kind: match p.kind {
            PrincipalKind::Role => "AwsIamRole",
            PrincipalKind::User => "AwsIamUser",
        }
        .to_string(),
        id: p.arn(),
        partition: p.partition.clone(),
        details: None,
    };
    match &subject.scope {
        Scope::AccessKey(key) => vec![
            AsffResource {
                kind: "AwsIamAccessKey".to_string(),
                id: format!("AWS::IAM::AccessKey:{key}"),
                partition: p.partition.clone(),
                details: Some(AccessKeyDetails {
                    access_key_id: key.clone(),
                    principal_name: p.name.clone(),
                    principal_type: "IAMUser".to_string(),
                    account_id: p.account.clone(),
                }),
            },
            identity,
        ],
        Scope::Whole | Scope::Password => vec![identity],
    }
}

/// At most `max` bytes, cut on a character boundary (ASFF limits are on length).
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Remembers a nominating finding on the record (the latest [`MAX_NOMINATING_FINDINGS`]).
pub fn remember_nominating(record: &mut Record, finding: &HubFindingRef) {
    if record.hub_findings.contains(finding) {
        return;
    }
    record.hub_findings.push(finding.clone());
    let excess = record
        .hub_findings
        .len()
        .saturating_sub(MAX_NOMINATING_FINDINGS);
    record.hub_findings.drain(..excess);
}

#[cfg(test)]
mod tests;
