//! The owner-message outbox and its send claims (docs/design.md, 'Owners and messages').
//!
//! | item   | pk                  | sk                   | attributes |
//! |--------|---------------------|----------------------|------------|
//! | outbox | `OUTBOX#<account>`  | the entry's key      | `entry` (JSON) |
//! | claim  | `SENT#<account>`    | the entry's key      | `state` (`sending`/`sent`), `claimed_at`, `expires_at` (TTL, 30 days) |

use super::*;
use crate::domain::notify::OutboxEntry;
use crate::ports::SendClaim;

/// How long a sent claim is kept: longer than any run retries an entry.
const SENT_TTL: chrono::Duration = chrono::Duration::days(30);

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
            .consistent_read(true);
        decode_all(self.query_all(query).await?, "entry")
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
