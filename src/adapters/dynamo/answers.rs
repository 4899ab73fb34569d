//! Answer links are single use: the first POST claims the token id with a conditional write.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{key_time, s};
use super::{DynamoStore, Item, TTL_ATTRIBUTE};
use crate::app::answer::AnswerLedger;
use crate::domain::Timestamp;
use crate::ports::PortResult;

fn pk(token_id: &str) -> String {
    format!("ANSWER#{token_id}")
}

#[async_trait]
impl AnswerLedger for DynamoStore {
    async fn claim_answer(
        &self,
        token_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> PortResult<bool> {
        let mut item = Item::new();
        item.insert("pk".into(), s(&pk(token_id)));
        item.insert("sk".into(), s("ANSWER"));
        item.insert("kind".into(), s("answer"));
        item.insert("used_at".into(), s(&key_time(now)));
        // Kept a day past the link's expiry: by then the signature check refuses it anyway.
        item.insert(
            TTL_ATTRIBUTE.into(),
            AttributeValue::N(
                (expires_at + chrono::Duration::days(1))
                    .timestamp()
                    .to_string(),
            ),
        );
        let request = self
            .client
            .put_item()
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk");
        self.put_if(item, request).await
    }

    async fn release_answer(&self, token_id: &str) -> PortResult<()> {
        self.writable("DeleteItem")?;
        let pk = pk(token_id);
        self.retry
            .call("DeleteItem", || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .key("sk", s("ANSWER"))
                    .send()
            })
            .await?;
        Ok(())
    }
}
