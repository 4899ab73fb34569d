//! The state table in DynamoDB (docs/design.md, 'State in DynamoDB'): one table, items told apart by key prefix.
//!
//! | item     | pk                        | sk                              | query attributes |
//! |----------|---------------------------|---------------------------------|------------------|
//! | state    | `ID#<account>#<subject>`  | `STATE`                         | `account`, `subject`, `principal`, `stage`, `stage_subject`, `version`, `due_pk` + `next_due_at` (only when a step is due) |
//! | audit    | `ID#<account>#<subject>`  | `AUDIT#<time>#<seq>`            | — |
//! | snapshot | `ID#<account>#<subject>`  | `SNAPSHOT#<time>`               | — |
//! | event    | `EVENT#<id>`              | `EVENT`                         | `expires_at` (TTL) |
//! | breaker  | `BREAKER#<account>`       | `BREAKER`                       | — |
//! | dry run  | `DRYRUN#<account>`        | `DRYRUN`                        | — (`at`: the last dry-run sweep) |
//! | outbox, send claim | `OUTBOX#<account>`, `SENT#<account>` | the message key | see `outbox.rs` |
//! | answer   | `ANSWER#<token id>`       | `ANSWER`                        | `expires_at` (TTL): a used answer link |
//!
//! The domain value itself is kept as JSON in one string attribute (`record`, `entry`,
//! `snapshot`, `state`), so the table never needs a migration when a domain type grows a field;
//! the top-level attributes exist only to be queried. Three GSIs, all fed by state items only
//! (other items never carry their key attributes):
//! - `due` (`due_pk` = `DUE#<account>`, `next_due_at`): sparse, only records with a pending step;
//! - `by_principal` (`principal` ARN, `subject`): the whole and the credentials of one principal;
//! - `by_account` (`account`, `stage_subject` = `<stage>#<subject>`): a stage is a key prefix.
//!
//! Times in keys are fixed-width UTC with nanoseconds, so string order is time order.
//!
//! This file: the store and its reads and writes; `table.rs`: creating the table (`dormant init`);
//! `item.rs`: keys and the JSON-in-an-attribute codec.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType,
    TableStatus, TimeToLiveSpecification, TimeToLiveStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::paging::all_pages;
use super::retry::{classify, RetryPolicy};
use super::{ErrorKind, PortError, PortResult};
use crate::domain::notify::OutboxEntry;
use crate::domain::subject::DEFAULT_PARTITION;
use crate::domain::{
    AuditEntry, BreakerState, Principal, Record, Snapshot, Stage, Subject, Timestamp,
};
use crate::ports::{SendClaim, Store};
use item::*;

mod answers;
mod item;
mod outbox;
mod table;

/// The sparse index of records with a pending step.
pub const DUE_INDEX: &str = "due";
/// Records by principal ARN.
pub const PRINCIPAL_INDEX: &str = "by_principal";
/// Records by account, range key `<stage>#<subject id>`.
pub const ACCOUNT_INDEX: &str = "by_account";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// How long an event id is remembered for deduplication.
const EVENT_TTL: chrono::Duration = chrono::Duration::days(7);
/// How long `init` waits for a new table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
/// How many fresh audit sort keys to try if one is taken (only another process could take it).
const AUDIT_KEY_ATTEMPTS: usize = 5;

type Item = HashMap<String, AttributeValue>;

/// Makes audit sort keys unique within the process even for entries of the same instant, and
/// write ids unique per write.
static SEQ: AtomicU64 = AtomicU64::new(0);

pub struct DynamoStore {
    client: Client,
    table: String,
    retry: RetryPolicy,
    /// The partition of the account whose records this store reads (`aws` unless set).
    partition: String,
    /// A preview's store (`--dry-run`): every write is refused (see [`DynamoStore::read_only`]).
    read_only: bool,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retry: RetryPolicy) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retry,
            partition: DEFAULT_PARTITION.to_string(),
            read_only: false,
        }
    }

    /// A store that refuses every write: a preview (`--dry-run`) writes nothing, and if a code
    /// path ever tried, it fails loudly here instead of changing the table.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn writable(&self, op: &str) -> PortResult<()> {
        if self.read_only {
            Err(PortError::new(
                ErrorKind::Permanent,
                op,
                "refused: a preview (--dry-run) writes nothing to the table",
            ))
        } else {
            Ok(())
        }
    }

    /// Names the records it reads in `partition` (one store per account's engine).
    pub fn in_partition(mut self, partition: &str) -> Self {
        self.partition = partition.to_string();
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One item by key, strongly consistent (reads feed conditional writes).
    async fn get(&self, pk: &str, sk: &str) -> PortResult<Option<Item>> {
        let out = self
            .retry
            .call("GetItem", || {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .consistent_read(true)
                    .send()
            })
            .await?;
        Ok(out.item)
    }

    /// Every item a query matches, page by page (each page retried on its own).
    async fn query_all(&self, query: QueryFluentBuilder) -> PortResult<Vec<Item>> {
        let query = &query;
        let fetch = |start: Option<Item>| {
            self.retry.call("Query", move || {
                query.clone().set_exclusive_start_key(start.clone()).send()
            })
        };
        let split = |page: QueryOutput| {
            let next = page.last_evaluated_key.filter(|key| !key.is_empty());
            (page.items.unwrap_or_default(), next)
        };
        all_pages("Query", "key", fetch, split).await
    }

    fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// A plain PutItem (last writer wins).
    async fn put(&self, item: Item) -> PortResult<()> {
        self.writable("PutItem")?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        self.retry
            .call("PutItem", || request.clone().send())
            .await
            .map(drop)
    }

    /// A conditional PutItem: `Ok(true)` if written, `Ok(false)` if the condition failed.
    ///
    /// A retried attempt may fail its condition only because an earlier attempt was applied and
    /// its response lost (a timeout or 5xx after the write). The item carries a unique
    /// `write_id`, so in that case we read it back and count our own write as written.
    async fn put_if(&self, mut item: Item, request: PutItemFluentBuilder) -> PortResult<bool> {
        self.writable("PutItem")?;
        let write_id = unique_id();
        item.insert("write_id".into(), s(&write_id));
        let (pk, sk) = (
            attr_s(&item, "pk").to_string(),
            attr_s(&item, "sk").to_string(),
        );
        let request = request.table_name(&self.table).set_item(Some(item));
        let mut attempts = 0u32;
        let outcome = self
            .retry
            .run(|| {
                attempts += 1;
                let request = request.clone();
                async move {
                    request
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify("PutItem", e))
                }
            })
            .await;
        match outcome {
            Ok(()) => Ok(true),
            Err(e) if e.kind == ErrorKind::Conflict => {
                if attempts > 1 {
                    let stored = self.get(&pk, &sk).await?;
                    if stored.as_ref().map(|i| attr_s(i, "write_id")) == Some(write_id.as_str()) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Puts `items` unconditionally with `BatchWriteItem`, 25 a request; unprocessed items are
    /// sent again with backoff.
    async fn batch_put(&self, items: Vec<Item>) -> PortResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.writable("BatchWriteItem")?;
        for chunk in items.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for item in chunk {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map_err(|e| {
                        PortError::new(ErrorKind::Permanent, "BatchWriteItem", e.to_string())
                    })?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let pending = std::sync::Mutex::new(requests);
            self.retry
                .run(|| {
                    let batch = pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone();
                    let pending = &pending;
                    async move {
                        let out = self
                            .client
                            .batch_write_item()
                            .request_items(&self.table, batch)
                            .send()
                            .await
                            .map_err(|e| classify("BatchWriteItem", e))?;
                        let left = out
                            .unprocessed_items
                            .and_then(|mut u| u.remove(&self.table))
                            .unwrap_or_default();
                        let count = left.len();
                        *pending
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = left;
                        if count == 0 {
                            Ok(())
                        } else {
                            Err(PortError::new(
                                ErrorKind::Transient,
                                "BatchWriteItem",
                                format!("{count} items unprocessed"),
                            ))
                        }
                    }
                })
                .await?;
        }
        Ok(())
    }

    /// Records as stored, named in this account's partition (keys are partition-free: see
    /// [`Subject::stable_id`]).
    fn records(&self, items: Vec<Item>) -> PortResult<Vec<Record>> {
        let mut records: Vec<Record> = decode_all(items, "record")?;
        for r in &mut records {
            r.subject.principal.partition = self.partition.clone();
        }
        Ok(records)
    }

    /// A query for `subject`'s items whose sort key starts with `prefix` (`AUDIT#`, `SNAPSHOT#`).
    fn items_of(&self, subject: &Subject, prefix: &str) -> QueryFluentBuilder {
        self.query()
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(&subject_pk(subject)))
            .expression_attribute_values(":prefix", s(prefix))
    }

    fn state_item(&self, stored: &Record) -> PortResult<Item> {
        let subject = stored.subject.stable_id();
        let account = &stored.subject.principal.account;
        let mut item = Item::new();
        item.insert("pk".into(), s(&subject_pk(&stored.subject)));
        item.insert("sk".into(), s("STATE"));
        item.insert("kind".into(), s("state"));
        item.insert("record".into(), s(&to_json("PutItem", stored)?));
        item.insert("account".into(), s(account));
        item.insert(
            "principal".into(),
            s(&stored.subject.principal.stable_arn()),
        );
        item.insert("stage".into(), s(stored.stage.as_str()));
        item.insert(
            "stage_subject".into(),
            s(&format!("{}#{subject}", stored.stage.as_str())),
        );
        item.insert("subject".into(), s(&subject));
        item.insert(
            "version".into(),
            AttributeValue::N(stored.version.to_string()),
        );
        if let Some(step) = stored.next_step {
            item.insert("next_step".into(), s(step.as_str()));
        }
        // Only records with a due step enter the sparse `due` index; a full PutItem drops
        // these attributes from a record that no longer has one.
        if let Some(due) = stored.next_due_at {
            item.insert("due_pk".into(), s(&format!("DUE#{account}")));
            item.insert("next_due_at".into(), s(&key_time(due)));
        }
        Ok(item)
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn load(&self, subject: &Subject) -> PortResult<Option<Record>> {
        let found = self.get(&subject_pk(subject), "STATE").await?;
        Ok(self.records(found.into_iter().collect())?.pop())
    }

    async fn load_principal(&self, principal: &Principal) -> PortResult<Vec<Record>> {
        let query = self
            .query()
            .index_name(PRINCIPAL_INDEX)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", "principal")
            .expression_attribute_values(":p", s(&principal.stable_arn()));
        self.records(self.query_all(query).await?)
    }

    async fn list(&self, account: &str, stage: Option<Stage>) -> PortResult<Vec<Record>> {
        let mut query = self
            .query()
            .index_name(ACCOUNT_INDEX)
            .expression_attribute_names("#a", "account")
            .expression_attribute_values(":a", s(account));
        query = match stage {
            Some(stage) => query
                .key_condition_expression("#a = :a AND begins_with(#ss, :stage)")
                .expression_attribute_names("#ss", "stage_subject")
                .expression_attribute_values(":stage", s(&format!("{}#", stage.as_str()))),
            None => query.key_condition_expression("#a = :a"),
        };
        self.records(self.query_all(query).await?)
    }

    async fn due(&self, account: &str, now: Timestamp) -> PortResult<Vec<Record>> {
        let query = self
            .query()
            .index_name(DUE_INDEX)
            .key_condition_expression("#d = :d AND #t <= :now")
            .expression_attribute_names("#d", "due_pk")
            .expression_attribute_names("#t", "next_due_at")
            .expression_attribute_values(":d", s(&format!("DUE#{account}")))
            .expression_attribute_values(":now", s(&key_time(now)));
        self.records(self.query_all(query).await?)
    }

    async fn save(&self, record: &Record) -> PortResult<u64> {
        let version = record.version.checked_add(1).ok_or_else(|| {
            PortError::new(ErrorKind::Permanent, "PutItem", "record version overflow")
        })?;
        let stored = Record {
            version,
            ..record.clone()
        };
        let item = self.state_item(&stored)?;
        let request = if record.version == 0 {
            self.client
                .put_item()
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
        } else {
            self.client
                .put_item()
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(record.version.to_string()),
                )
        };
        if self.put_if(item, request).await? {
            Ok(version)
        } else {
            Err(PortError::new(
                ErrorKind::Conflict,
                "PutItem",
                format!(
                    "{}: stored version is no longer {}",
                    record.subject.id(),
                    record.version
                ),
            ))
        }
    }

    async fn append_audit(&self, subject: &Subject, entry: &AuditEntry) -> PortResult<()> {
        // A fresh sequence number per attempt; the condition guarantees an entry is never
        // overwritten (another process could hit the same instant and counter value).
        for _ in 0..AUDIT_KEY_ATTEMPTS {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let item = audit_item(subject, entry, &format!("{seq:020}"))?;
            let request = self
                .client
                .put_item()
                .condition_expression("attribute_not_exists(#sk)")
                .expression_attribute_names("#sk", "sk");
            if self.put_if(item, request).await? {
                return Ok(());
            }
        }
        Err(PortError::new(
            ErrorKind::Conflict,
            "PutItem",
            format!(
                "{}: no free audit key after {AUDIT_KEY_ATTEMPTS} tries",
                subject.id()
            ),
        ))
    }

    async fn append_audit_once(
        &self,
        subject: &Subject,
        entry: &AuditEntry,
        dedup: &str,
    ) -> PortResult<()> {
        let item = audit_item(subject, entry, dedup)?;
        let request = self
            .client
            .put_item()
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", "sk");
        // Already there: an earlier attempt of the same step wrote it.
        self.put_if(item, request).await.map(|_| ())
    }

    /// `BatchWriteItem`, 25 entries a request; keys are unique per write, so no condition is
    /// needed.
    async fn append_audits(&self, entries: &[(Subject, AuditEntry)]) -> PortResult<()> {
        let items = entries
            .iter()
            .map(|(subject, entry)| audit_item(subject, entry, &unique_id()))
            .collect::<PortResult<Vec<Item>>>()?;
        self.batch_put(items).await
    }

    /// Every done entry in `BatchWriteItem`s, then every record: a record is never written
    /// before its done entry (a crash between them leaves the intent, whose completion writes the
    /// same entry), and a step costs about 1/12 of a request.
    async fn commit_batch(&self, commits: &[(Record, AuditEntry, String)]) -> PortResult<Vec<u64>> {
        let (mut entries, mut states) = (Vec::new(), Vec::new());
        let mut versions = Vec::with_capacity(commits.len());
        for (record, done, dedup) in commits {
            let version = record.version.checked_add(1).ok_or_else(|| {
                PortError::new(
                    ErrorKind::Permanent,
                    "BatchWriteItem",
                    "record version overflow",
                )
            })?;
            entries.push(audit_item(&record.subject, done, dedup)?);
            states.push(self.state_item(&Record {
                version,
                ..record.clone()
            })?);
            versions.push(version);
        }
        self.batch_put(entries).await?;
        self.batch_put(states).await?;
        Ok(versions)
    }

    async fn history(&self, subject: &Subject) -> PortResult<Vec<AuditEntry>> {
        let query = self
            .items_of(subject, "AUDIT#")
            .scan_index_forward(true)
            .consistent_read(true);
        let items = self.query_all(query).await?;
        let mut entries: Vec<(String, AuditEntry)> = items
            .iter()
            .map(|item| Ok((attr_s(item, "written").to_string(), decode(item, "entry")?)))
            .collect::<PortResult<_>>()?;
        // Stable: entries written before `written` existed keep their key order.
        entries.sort_by(|(wa, a), (wb, b)| a.at.cmp(&b.at).then_with(|| wa.cmp(wb)));
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    async fn put_snapshot(&self, subject: &Subject, snapshot: &Snapshot) -> PortResult<()> {
        let mut item = Item::new();
        item.insert("pk".into(), s(&subject_pk(subject)));
        item.insert(
            "sk".into(),
            s(&format!("SNAPSHOT#{}", key_time(snapshot.taken_at))),
        );
        item.insert("kind".into(), s("snapshot"));
        item.insert("snapshot".into(), s(&to_json("PutItem", snapshot)?));
        self.put(item).await
    }

    async fn latest_snapshot(&self, subject: &Subject) -> PortResult<Option<Snapshot>> {
        let query = self
            .items_of(subject, "SNAPSHOT#")
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true);
        // One page is enough: newest first, and Limit 1.
        let page = self.retry.call("Query", || query.clone().send()).await?;
        let snapshot: Option<Snapshot> = page
            .items
            .unwrap_or_default()
            .first()
            .map(|item| decode(item, "snapshot"))
            .transpose()?;
        Ok(snapshot.map(|mut s| {
            s.principal.partition = self.partition.clone();
            s
        }))
    }

    async fn claim_event(&self, event_id: &str, now: Timestamp) -> PortResult<bool> {
        let mut item = Item::new();
        item.insert("pk".into(), s(&format!("EVENT#{event_id}")));
        item.insert("sk".into(), s("EVENT"));
        item.insert("kind".into(), s("event"));
        item.insert("first_seen".into(), s(&key_time(now)));
        item.insert(
            TTL_ATTRIBUTE.into(),
            AttributeValue::N((now + EVENT_TTL).timestamp().to_string()),
        );
        let request = self
            .client
            .put_item()
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk");
        self.put_if(item, request).await
    }

    async fn release_event(&self, event_id: &str) -> PortResult<()> {
        self.writable("DeleteItem")?;
        let pk = format!("EVENT#{event_id}");
        self.retry
            .call("DeleteItem", || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .key("sk", s("EVENT"))
                    .send()
            })
            .await?;
        Ok(())
    }

    async fn note_dry_run(&self, account: &str, now: Timestamp) -> PortResult<()> {
        // No `account` attribute: that would put the marker into the `by_account` index.
        let mut item = Item::new();
        item.insert("pk".into(), s(&dry_run_pk(account)));
        item.insert("sk".into(), s("DRYRUN"));
        item.insert("kind".into(), s("dry_run"));
        item.insert("at".into(), s(&key_time(now)));
        self.put(item).await
    }

    async fn sweep_cursor(&self, account: &str) -> PortResult<Option<String>> {
        let item = self.get(&sweep_pk(account), "CURSOR").await?;
        Ok(item
            .map(|i| attr_s(&i, "from").to_string())
            .filter(|from| !from.is_empty()))
    }

    async fn set_sweep_cursor(
        &self,
        account: &str,
        cursor: Option<&str>,
        now: Timestamp,
    ) -> PortResult<()> {
        // Like the dry-run marker, outside the `by_account` index; "" = the pass is complete.
        let mut item = Item::new();
        item.insert("pk".into(), s(&sweep_pk(account)));
        item.insert("sk".into(), s("CURSOR"));
        item.insert("kind".into(), s("sweep_cursor"));
        item.insert("from".into(), s(cursor.unwrap_or_default()));
        item.insert("at".into(), s(&key_time(now)));
        self.put(item).await
    }

    async fn last_dry_run(&self, account: &str) -> PortResult<Option<Timestamp>> {
        let Some(item) = self.get(&dry_run_pk(account), "DRYRUN").await? else {
            return Ok(None);
        };
        let at = attr_s(&item, "at");
        chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                PortError::new(
                    ErrorKind::Permanent,
                    "decode",
                    format!("dry-run marker of account {account}: '{at}': {e}"),
                )
            })
    }

    async fn breaker(&self, account: &str) -> PortResult<BreakerState> {
        match self.get(&breaker_pk(account), "BREAKER").await? {
            Some(item) => {
                let mut state: BreakerState = decode(&item, "state")?;
                // Items written before versioning have none: they count as version 1.
                state.version = item
                    .get("version")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Ok(state)
            }
            None => Ok(BreakerState::default()),
        }
    }

    async fn save_breaker(&self, account: &str, state: &BreakerState) -> PortResult<()> {
        // No `account` attribute here: that would put the breaker into the `by_account` index.
        let mut item = Item::new();
        item.insert("pk".into(), s(&breaker_pk(account)));
        item.insert("sk".into(), s("BREAKER"));
        item.insert("kind".into(), s("breaker"));
        item.insert("state".into(), s(&to_json("PutItem", state)?));
        item.insert(
            "version".into(),
            AttributeValue::N(state.version.saturating_add(1).to_string()),
        );
        let request = match state.version {
            0 => self
                .client
                .put_item()
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk"),
            // An unversioned item (written before versioning) is taken as version 1.
            1 => self
                .client
                .put_item()
                .condition_expression("attribute_not_exists(#v) OR #v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", AttributeValue::N("1".into())),
            v => self
                .client
                .put_item()
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        if self.put_if(item, request).await? {
            Ok(())
        } else {
            Err(PortError::new(
                ErrorKind::Conflict,
                "PutItem",
                format!(
                    "breaker of account {account}: stored version is no longer {}",
                    state.version
                ),
            ))
        }
    }

    async fn queue_message(&self, entry: &OutboxEntry) -> PortResult<()> {
        self.queue_entry(entry).await
    }

    async fn outbox(&self, account: &str) -> PortResult<Vec<OutboxEntry>> {
        self.outbox_entries(account).await
    }

    async fn message_failed(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        error: &str,
    ) -> PortResult<u32> {
        self.entry_failed(entry, now, error).await
    }

    async fn dead_letter(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        error: &str,
    ) -> PortResult<()> {
        self.entry_dead(entry, now, error).await
    }

    async fn dead_letters(&self, account: &str) -> PortResult<Vec<crate::ports::DeadLetter>> {
        self.dead_entries(account).await
    }

    async fn claim_message(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        lease: chrono::Duration,
    ) -> PortResult<SendClaim> {
        self.claim_entry(entry, now, lease).await
    }

    async fn message_sent(&self, entry: &OutboxEntry, now: Timestamp) -> PortResult<()> {
        self.entry_sent(entry, now).await
    }

    async fn release_message(&self, entry: &OutboxEntry) -> PortResult<()> {
        self.release_entry(entry).await
    }
}
