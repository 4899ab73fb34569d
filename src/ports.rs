//! The ports the application drives: traits in domain types only, no SDK types (the awsdocs
//! `traits.rs` seam). `crate::adapters` implements them over the AWS SDK; tests may use fakes.

use async_trait::async_trait;

use crate::domain::finding::UnusedAccessDetails;
use crate::domain::notify::{ActionLink, DigestItem, OutboxEntry, Recipient, Rendered};
use crate::domain::security_hub::{AsffFinding, HubFailure, WorkflowUpdate};
use crate::domain::{
    AccessKey, AuditEntry, AutomationRequest, AutomationStatus, BreakerState, Effect, Facts,
    OutboundEvent, Principal, PrincipalKind, Record, RestoreOutcome, Snapshot, Stage, Subject,
    Timestamp,
};

/// What went wrong in a port call, classified so the engine can decide what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {kind:?}: {message}")]
pub struct PortError {
    pub kind: ErrorKind,
    /// The AWS operation, e.g. `PutRolePolicy`.
    pub operation: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling or a 5xx: retried with backoff; after that, a failure worth retrying later.
    Transient,
    /// AccessDenied: the SSM fallback may help; retrying will not.
    AccessDenied,
    /// The entity does not exist.
    NotFound,
    /// A conditional write lost (another writer got there first).
    Conflict,
    /// Anything else: validation errors, limits, malformed responses.
    Permanent,
}

impl PortError {
    pub fn new(kind: ErrorKind, operation: &str, message: impl Into<String>) -> Self {
        PortError {
            kind,
            operation: operation.to_string(),
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// IAM, for one account.
#[async_trait]
pub trait Iam: Send + Sync {
    /// The account these calls act in.
    fn account(&self) -> &str;

    /// The partition of that account (`aws`, `aws-cn`, `aws-us-gov`, …).
    fn partition(&self) -> &str {
        crate::domain::subject::DEFAULT_PARTITION
    }

    /// Every role and user, read in bulk (`GetAccountAuthorizationDetails` + the credential
    /// report). Access-key ids are not in those, so keys carry placeholder ids (`slot1`, `slot2`)
    /// and `Facts::bulk` is true. Good for deciding who needs a closer look, not for acting.
    async fn bulk_facts(&self) -> PortResult<Vec<Facts>>;

    /// The name of the role or user with this unique id (`AROA…`/`AIDA…`, as AWS Config reports
    /// them); `None` if no such principal exists.
    async fn name_by_unique_id(
        &self,
        kind: PrincipalKind,
        unique_id: &str,
    ) -> PortResult<Option<String>>;

    /// A fresh read of one principal just before acting. `None` if it no longer exists.
    async fn fresh_facts(&self, kind: PrincipalKind, name: &str) -> PortResult<Option<Facts>>;

    /// A user's access keys with their ids, status and creation dates (`ListAccessKeys`; no
    /// last-used dates): enough to put ids on the credential report's key slots.
    async fn access_keys(&self, user: &str) -> PortResult<Vec<AccessKey>> {
        Ok(self
            .fresh_facts(PrincipalKind::User, user)
            .await?
            .map(|f| f.access_keys)
            .unwrap_or_default())
    }

    /// Carries out one effect (idempotently: already-done counts as done). `TakeSnapshot` is not
    /// an IAM change and is handled through [`Iam::snapshot`].
    async fn apply(&self, principal: &Principal, effect: &Effect) -> PortResult<()>;

    /// Everything `restore` needs.
    async fn snapshot(&self, principal: &Principal, now: Timestamp) -> PortResult<Snapshot>;

    /// Recreates a deleted principal from its snapshot, as far as IAM allows. Idempotent: what
    /// already exists counts as restored, and an identity an earlier, interrupted restore of the
    /// same snapshot created is finished. An identity of that name that is anyone else's is left
    /// untouched: [`RestoreOutcome::NameTaken`]. Secrets (access keys, passwords, MFA seeds)
    /// cannot be recreated and are listed in `not_restored`.
    async fn restore(&self, snapshot: &Snapshot) -> PortResult<RestoreOutcome>;
}

/// IAM Access Analyzer `GetFindingV2`: what an unused-access finding knows beyond its event.
/// Enrichment only: a failure here never stops the nomination.
#[async_trait]
pub trait FindingDetails: Send + Sync {
    /// The details of finding `finding_id` of analyzer `analyzer_arn`. `ErrorKind::NotFound` when
    /// the finding (or analyzer) is gone.
    async fn unused_access(
        &self,
        analyzer_arn: &str,
        finding_id: &str,
    ) -> PortResult<UnusedAccessDetails>;
}

/// IAM Access Advisor (`GenerateServiceLastAccessedDetails` then `GetServiceLastAccessedDetails`),
/// for one account.
#[async_trait]
pub trait AccessAdvisor: Send + Sync {
    /// The most recent `LastAuthenticated` of `principal` across all services; `None` when it
    /// authenticated to none within Access Advisor's tracking period. An error when the report
    /// cannot be had (job failed, still running after the poll bound, denied).
    async fn last_authenticated(&self, principal: &Principal) -> PortResult<Option<Timestamp>>;
}

/// SSM Automation: runs a `remediation-docs/` document where the controller cannot act directly.
#[async_trait]
pub trait Fallback: Send + Sync {
    /// Starts an execution; returns its id.
    async fn start(&self, request: &AutomationRequest) -> PortResult<String>;

    /// Where an execution stands.
    async fn status(&self, execution_id: &str) -> PortResult<AutomationStatus>;

    /// Asks an execution to stop (`StopAutomationExecution`); stopping one that has ended is a
    /// no-op. It may take a moment to stop: poll [`Fallback::status`].
    async fn stop(&self, execution_id: &str) -> PortResult<()>;
}

/// Where dormant's own events go (EventBridge `PutEvents`).
#[async_trait]
pub trait Publisher: Send + Sync {
    async fn publish(&self, events: &[OutboundEvent]) -> PortResult<()>;
}

/// Security Hub in one account (docs/design.md, 'Security Hub'): dormant's own findings and the
/// workflow of the findings that nominated. Reporting only: the engine calls it after a commit,
/// and a failure never undoes or holds up a step.
#[async_trait]
pub trait SecurityHub: Send + Sync {
    /// The region dormant's findings are imported in (their `ProductArn` and `Region`).
    fn region(&self) -> &str;

    /// `BatchImportFindings`, at most 100 a call. `Ok` lists the findings Security Hub refused
    /// (`FailedFindings`); `Err` is a request that failed as a whole.
    async fn import(&self, findings: &[AsffFinding]) -> PortResult<Vec<HubFailure>>;

    /// `BatchUpdateFindings`, each in the region of its finding's product ARN. `Ok` lists the
    /// findings not updated (`UnprocessedFindings`, or a request for them that failed).
    async fn update_workflow(&self, updates: &[WorkflowUpdate]) -> PortResult<Vec<HubFailure>>;
}

/// The state table.
#[async_trait]
pub trait Store: Send + Sync {
    async fn load(&self, subject: &Subject) -> PortResult<Option<Record>>;

    /// Every record of one principal (the whole and its credentials).
    async fn load_principal(&self, principal: &Principal) -> PortResult<Vec<Record>>;

    /// Every record of an account, optionally of one stage.
    async fn list(&self, account: &str, stage: Option<Stage>) -> PortResult<Vec<Record>>;

    /// Records with a step due at or before `now` (the sparse due index).
    async fn due(&self, account: &str, now: Timestamp) -> PortResult<Vec<Record>>;

    /// Writes `record` if the stored version is still `record.version`; the stored copy gets
    /// `version + 1`, which is returned. `ErrorKind::Conflict` if someone else wrote first.
    async fn save(&self, record: &Record) -> PortResult<u64>;

    async fn append_audit(&self, subject: &Subject, entry: &AuditEntry) -> PortResult<()>;

    /// Appends an entry under a key derived from `dedup` and `entry.at`: writing the same entry
    /// again (a resumed step) leaves exactly one.
    async fn append_audit_once(
        &self,
        subject: &Subject,
        entry: &AuditEntry,
        dedup: &str,
    ) -> PortResult<()>;

    /// Commits a step: its done entry as [`Store::append_audit_once`] does, then `record` as
    /// [`Store::save`] does. The entry goes first, under a key fixed by the intent: a crash
    /// between the two leaves the intent, whose completion writes the same entry again.
    /// (DynamoDB could write both in one transaction, but moto copies the whole table per
    /// transaction, and on AWS it costs twice the write units.)
    async fn commit(&self, record: &Record, done: &AuditEntry, dedup: &str) -> PortResult<u64> {
        self.append_audit_once(&record.subject, done, dedup).await?;
        self.save(record).await
    }

    /// Commits steps whose intents the caller holds, well within their lease: each done entry
    /// (under the key [`Store::append_audit_once`] gives `dedup`) and each record (its `version`
    /// the intent's) written without a condition, the lease keeping other writers off, in as few
    /// requests as the store allows. Returns each record's new version. `Err`: some may have been
    /// written; commit each again with [`Store::commit`] (the entry stays one; the record's
    /// condition then tells whether it was written).
    async fn commit_batch(&self, commits: &[(Record, AuditEntry, String)]) -> PortResult<Vec<u64>> {
        let mut versions = Vec::with_capacity(commits.len());
        for (record, done, dedup) in commits {
            versions.push(self.commit(record, done, dedup).await?);
        }
        Ok(versions)
    }

    /// Appends entries that need no ordering against other writes (a dry run's notes), in as
    /// few requests as the store allows.
    async fn append_audits(&self, entries: &[(Subject, AuditEntry)]) -> PortResult<()> {
        for (subject, entry) in entries {
            self.append_audit(subject, entry).await?;
        }
        Ok(())
    }

    /// Oldest first; entries of the same instant (a fixed `--now`, one run's steps) in the
    /// order they were written.
    async fn history(&self, subject: &Subject) -> PortResult<Vec<AuditEntry>>;

    async fn put_snapshot(&self, subject: &Subject, snapshot: &Snapshot) -> PortResult<()>;

    async fn latest_snapshot(&self, subject: &Subject) -> PortResult<Option<Snapshot>>;

    /// Records an EventBridge event id; `true` the first time, `false` for a redelivery.
    /// The item expires after 7 days.
    async fn claim_event(&self, event_id: &str, now: Timestamp) -> PortResult<bool>;

    /// Gives a claim back after processing failed, so the event's redelivery is processed.
    async fn release_event(&self, event_id: &str) -> PortResult<()>;

    /// Notes that an observing dry-run sweep (`dry_run = true`) ran in `account`: the CLI asks
    /// before a first real sweep of an account that never had a dry run. (A `--dry-run` preview
    /// writes nothing; the CLI notes it on the operator's machine.)
    async fn note_dry_run(&self, account: &str, now: Timestamp) -> PortResult<()>;

    /// When a dry-run sweep last ran in `account`; `None` if never.
    async fn last_dry_run(&self, account: &str) -> PortResult<Option<Timestamp>>;

    /// Where the unfinished sweep pass of `account` stopped at a deadline: the principal ARN
    /// the next run continues from. `None` when the last pass was complete.
    async fn sweep_cursor(&self, account: &str) -> PortResult<Option<String>>;

    /// Records where a sweep pass stopped (`Some(arn)`), or that it is complete (`None`).
    async fn set_sweep_cursor(
        &self,
        account: &str,
        cursor: Option<&str>,
        now: Timestamp,
    ) -> PortResult<()>;

    /// The account's breaker, with the stored version (0 when none is stored).
    async fn breaker(&self, account: &str) -> PortResult<BreakerState>;

    /// Writes the breaker if the stored version is still `state.version` (0: none stored).
    /// `ErrorKind::Conflict` if another run wrote first: re-read and apply the change again
    /// (`app::breaker::Breaker` does).
    async fn save_breaker(&self, account: &str, state: &BreakerState) -> PortResult<()>;

    /// Queues an owner message (docs/design.md, 'Owners and messages'). Idempotent: the same
    /// entry (same [`OutboxEntry::key`]) queued again stays one.
    async fn queue_message(&self, entry: &OutboxEntry) -> PortResult<()>;

    /// Every message still queued for `account` (dead letters are not).
    async fn outbox(&self, account: &str) -> PortResult<Vec<OutboxEntry>>;

    /// Counts a failed attempt to send `entry` at `now` (with its error); returns the attempts
    /// so far. Counting the same `now` twice (a retried write) counts once.
    async fn message_failed(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        error: &str,
    ) -> PortResult<u32>;

    /// Gives up on `entry`: it stays in the table as a dead letter (never sent again, listed
    /// by [`Store::dead_letters`]) until its TTL, 30 days from `now`.
    async fn dead_letter(&self, entry: &OutboxEntry, now: Timestamp, error: &str)
        -> PortResult<()>;

    /// The messages of `account` given up on, with their attempts and last error.
    async fn dead_letters(&self, account: &str) -> PortResult<Vec<DeadLetter>>;

    /// Claims the sending of `entry` at `now`. A claim older than `lease` that was never marked
    /// sent (a run that crashed mid-send) may be taken over.
    async fn claim_message(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        lease: chrono::Duration,
    ) -> PortResult<SendClaim>;

    /// Marks the claim sent (kept for 30 days so no later run sends it again) and removes the
    /// entry from the outbox.
    async fn message_sent(&self, entry: &OutboxEntry, now: Timestamp) -> PortResult<()>;

    /// Gives a claim back after a failed send: the entry stays queued for the next run.
    async fn release_message(&self, entry: &OutboxEntry) -> PortResult<()>;
}

/// A member account as AWS Organizations lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: String,
    /// `State` (`ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, `CLOSED`, `PENDING_ACTIVATION`), or the
    /// older `Status` when AWS sends no `State`.
    pub state: String,
}

impl OrgAccount {
    /// Only active accounts are swept: a suspended or closing one cannot be acted in.
    pub fn is_active(&self) -> bool {
        self.state == "ACTIVE"
    }
}

/// AWS Organizations: where member accounts come from when they are not listed in the config.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Every account of the organization, whatever its state (all pages).
    async fn accounts(&self) -> PortResult<Vec<OrgAccount>>;
}

/// One account's share of a fanned-out sweep: the SQS message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSweep {
    pub account: String,
    /// The run it belongs to (the scheduled event's id), for the logs.
    pub run: String,
}

/// The sweep queue: one message per account, consumed by concurrent Lambda invocations.
#[async_trait]
pub trait SweepQueue: Send + Sync {
    /// Sends every request (in batches); an error means some may not have been sent.
    async fn send(&self, requests: &[AccountSweep]) -> PortResult<()>;
}

/// Links an owner can follow from a message to keep, approve or undo (signed elsewhere). The
/// engine asks for each item of each digest; [`NoLinks`] gives none, and the message then shows
/// the CLI commands instead. A link should expire at `item.next_due_at` and act only on
/// `item.unique_id` (a recreated namesake is someone else).
pub trait ActionLinks: Send + Sync {
    fn links(&self, item: &DigestItem, recipient: &Recipient) -> Vec<ActionLink>;
}

/// No links: messages show the commands the security team can run.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLinks;

impl ActionLinks for NoLinks {
    fn links(&self, _item: &DigestItem, _recipient: &Recipient) -> Vec<ActionLink> {
        Vec::new()
    }
}

/// Where owner messages go: SES email, Slack incoming webhooks, SNS topics. One call is one
/// message; retries of transient failures happen inside, and an `Err` is a message not sent.
#[async_trait]
pub trait Messenger: Send + Sync {
    async fn send(&self, recipient: &Recipient, message: &Rendered) -> PortResult<()>;
}

/// A message given up on (see [`Store::dead_letter`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub entry: OutboxEntry,
    pub attempts: u32,
    pub last_error: String,
    pub dead_at: String,
}

/// A claim on sending one outbox entry (see [`Store::claim_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendClaim {
    /// This run holds it: send, then [`Store::message_sent`] or [`Store::release_message`].
    Claimed,
    /// Sent already (by an earlier run): only the outbox entry is left to remove.
    Sent,
    /// Another run claimed it within the lease: leave it to that run.
    Busy,
}
