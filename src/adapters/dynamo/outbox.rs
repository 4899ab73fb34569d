//! The owner-message outbox and its send claims (docs/design.md, 'Owners and messages').
//!
//! | item   | pk                  | sk                   | attributes |
//! |--------|---------------------|----------------------|------------|
//! | outbox | `OUTBOX#<account>`  | the entry's key      | `entry` (JSON), `attempts`, `last_error`, `last_attempt_at`; a dead letter also `dead_at`, `expires_at` (TTL, 30 days) |
//! | claim  | `SENT#<account>`    | the entry's key      | `state` (`sending`/`sent`), `claimed_at`, `expires_at` (TTL, 30 days) |

use super::*;
use crate::domain::notify::OutboxEntry;
use crate::ports::{DeadLetter, SendClaim};

/// How long a sent claim is kept: longer than any run retries an entry.
const SENT_TTL: chrono::Duration = chrono::Duration::days(30);

/// How long a dead letter is kept for the operator to see.
const DEAD_TTL: chrono::Duration = chrono::Duration::days(30);

/// An error as stored: enough to tell what failed.
fn short(error: &str) -> String {
    error.chars().take(1000).collect()
}

fn outbox_pk(account: &str) -> String {
    format!("OUTBOX#{account}")
}

fn sent_pk(account: &str) -> String {
    format!("SENT#{account}")
}

impl DynamoStore {
    pub(super) async fn queue_entry(&self, entry: &OutboxEntry) -> PortResult<()> {
        let mut item = Item::new();
        item.insert("pk".into(), s(&outbox_pk(&entry.item.account)));
        item.insert("sk".into(), s(&entry.key()));
        item.insert("kind".into(), s("outbox"));
        item.insert("entry".into(), s(&to_json("PutItem", entry)?));
        let request = self
            .client
            .put_item()
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk");
        // Already queued (a resumed step): one entry either way.
        self.put_if(item, request).await.map(drop)
    }

    pub(super) async fn outbox_entries(&self, account: &str) -> PortResult<Vec<OutboxEntry>> {
        let query = self
            .query()
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", s(&outbox_pk(account)))
            .filter_expression("attribute_not_exists(#dead)")
            .expression_attribute_names("#dead", "dead_at")
            .consistent_read(true);
        decode_all(self.query_all(query).await?, "entry")
    }

    pub(super) async fn entry_failed(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        error: &str,
    ) -> PortResult<u32> {
        self.writable("UpdateItem")?;
        let (pk, sk) = (outbox_pk(&entry.item.account), entry.key());
        let at = key_time(now);
        // Once per `now`: a retry of a write that was applied fails the condition, and the
        // stored count is the answer.
        let updated = self
            .retry
            .call("UpdateItem", || {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .key("sk", s(&sk))
                    .update_expression("ADD #n :one SET #err = :err, #at = :at")
                    .condition_expression(
                        "attribute_exists(#pk) AND (attribute_not_exists(#at) OR #at <> :at)",
                    )
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_names("#n", "attempts")
                    .expression_attribute_names("#err", "last_error")
                    .expression_attribute_names("#at", "last_attempt_at")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":err", s(&short(error)))
                    .expression_attribute_values(":at", s(&at))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                    .send()
            })
            .await;
        let attributes = match updated {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if e.kind == ErrorKind::Conflict => match self.get(&pk, &sk).await? {
                Some(item) => item,
                None => {
                    return Err(PortError::new(
                        ErrorKind::NotFound,
                        "UpdateItem",
                        format!("outbox entry {sk} is no longer queued"),
                    ))
                }
            },
            Err(e) => return Err(e),
        };
        Ok(attempts(&attributes))
    }

    pub(super) async fn entry_dead(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        error: &str,
    ) -> PortResult<()> {
        self.writable("UpdateItem")?;
        let (pk, sk) = (outbox_pk(&entry.item.account), entry.key());
        let expires = (now + DEAD_TTL).timestamp().to_string();
        self.retry
            .call("UpdateItem", || {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .key("sk", s(&sk))
                    .update_expression("SET #dead = :at, #err = :err, #ttl = :ttl")
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_names("#dead", "dead_at")
                    .expression_attribute_names("#err", "last_error")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":at", s(&key_time(now)))
                    .expression_attribute_values(":err", s(&short(error)))
                    .expression_attribute_values(":ttl", AttributeValue::N(expires.clone()))
                    .send()
            })
            .await
            .map(drop)
    }

    pub(super) async fn dead_entries(&self, account: &str) -> PortResult<Vec<DeadLetter>> {
        let query = self
            .query()
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", s(&outbox_pk(account)))
            .filter_expression("attribute_exists(#dead)")
            .expression_attribute_names("#dead", "dead_at")
            .consistent_read(true);
        self.query_all(query)
            .await?
            .iter()
            .map(|item| {
                Ok(DeadLetter {
                    entry: decode(item, "entry")?,
                    attempts: attempts(item),
                    last_error: attr_s(item, "last_error").to_string(),
                    dead_at: attr_s(item, "dead_at").to_string(),
                })
            })
            .collect()
    }

    pub(super) async fn claim_entry(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        lease: chrono::Duration,
    ) -> PortResult<SendClaim> {
        let (pk, sk) = (sent_pk(&entry.item.account), entry.key());
        let mut item = Item::new();
        item.insert("pk".into(), s(&pk));
        item.insert("sk".into(), s(&sk));
        item.insert("kind".into(), s("sent"));
        item.insert("state".into(), s("sending"));
        item.insert("claimed_at".into(), s(&key_time(now)));
        item.insert(
            TTL_ATTRIBUTE.into(),
            AttributeValue::N((now + SENT_TTL).timestamp().to_string()),
        );
        // New, or a claim of a run that died mid-send and whose lease ran out.
        let request = self
            .client
            .put_item()
            .condition_expression(
                "attribute_not_exists(#pk) OR (#state = :sending AND #claimed < :stale)",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#claimed", "claimed_at")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":stale", s(&key_time(now - lease)));
        if self.put_if(item, request).await? {
            return Ok(SendClaim::Claimed);
        }
        let stored = self.get(&pk, &sk).await?;
        Ok(match stored.as_ref().map(|i| attr_s(i, "state")) {
            Some("sent") => SendClaim::Sent,
            _ => SendClaim::Busy,
        })
    }

    pub(super) async fn entry_sent(&self, entry: &OutboxEntry, now: Timestamp) -> PortResult<()> {
        self.writable("UpdateItem")?;
        let (pk, sk) = (sent_pk(&entry.item.account), entry.key());
        let expires = (now + SENT_TTL).timestamp().to_string();
        self.retry
            .call("UpdateItem", || {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .key("sk", s(&sk))
                    .update_expression("SET #state = :sent, #at = :at, #ttl = :ttl")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_names("#at", "sent_at")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":sent", s("sent"))
                    .expression_attribute_values(":at", s(&key_time(now)))
                    .expression_attribute_values(":ttl", AttributeValue::N(expires.clone()))
                    .send()
            })
            .await?;
        self.delete(&outbox_pk(&entry.item.account), &entry.key())
            .await
    }

    pub(super) async fn release_entry(&self, entry: &OutboxEntry) -> PortResult<()> {
        self.delete(&sent_pk(&entry.item.account), &entry.key())
            .await
    }

    async fn delete(&self, pk: &str, sk: &str) -> PortResult<()> {
        self.writable("DeleteItem")?;
        self.retry
            .call("DeleteItem", || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .send()
            })
            .await
            .map(drop)
    }
}

fn attempts(item: &Item) -> u32 {
    item.get("attempts")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
