//! Creating the table (`dormant init`): the key schema, the three GSIs and the TTL, idempotently.

use super::*;

impl DynamoStore {
    /// Whether the table exists.
    pub async fn exists(&self) -> PortResult<bool> {
        let described = self
            .retry
            .call("DescribeTable", || {
                self.client.describe_table().table_name(&self.table).send()
            })
            .await;
        match described {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the table with its indexes if it is absent (`true` if this call created it), waits
    /// until it is ACTIVE and makes sure TTL is on. Safe to run again.
    pub async fn init(&self) -> PortResult<bool> {
        let created = self.create_table().await?;
        self.wait_active().await?;
        self.enable_ttl().await?;
        Ok(created)
    }

    async fn create_table(&self) -> PortResult<bool> {
        let attributes = [
            "pk",
            "sk",
            "due_pk",
            "next_due_at",
            "principal",
            "subject",
            "account",
            "stage_subject",
        ]
        .into_iter()
        .map(|name| {
            built(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )
        })
        .collect::<PortResult<Vec<_>>>()?;
        let indexes = vec![
            gsi(DUE_INDEX, "due_pk", "next_due_at")?,
            gsi(PRINCIPAL_INDEX, "principal", "subject")?,
            gsi(ACCOUNT_INDEX, "account", "stage_subject")?,
        ];
        let request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(key_schema("pk", "sk")?))
            .set_global_secondary_indexes(Some(indexes));
        self.retry
            .run(|| {
                let request = request.clone();
                async move {
                    match request.send().await {
                        Ok(_) => Ok(true),
                        // Someone (an earlier run, a concurrent one) already made it.
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|se| se.is_resource_in_use_exception()) =>
                        {
                            Ok(false)
                        }
                        Err(e) => Err(classify("CreateTable", e)),
                    }
                }
            })
            .await
    }

    async fn wait_active(&self) -> PortResult<()> {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        loop {
            let out = self
                .retry
                .call("DescribeTable", || {
                    self.client.describe_table().table_name(&self.table).send()
                })
                .await?;
            let table = out.table;
            let table_active =
                table.as_ref().and_then(|t| t.table_status.as_ref()) == Some(&TableStatus::Active);
            let indexes_active = table
                .as_ref()
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .all(|i| {
                    i.index_status
                        .as_ref()
                        .is_none_or(|s| *s == IndexStatus::Active)
                });
            if table_active && indexes_active {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    "DescribeTable",
                    format!("table {} not ACTIVE after {ACTIVE_TIMEOUT:?}", self.table),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn enable_ttl(&self) -> PortResult<()> {
        let current = self
            .retry
            .call("DescribeTimeToLive", || {
                self.client
                    .describe_time_to_live()
                    .table_name(&self.table)
                    .send()
            })
            .await?;
        let status = current
            .time_to_live_description
            .and_then(|d| d.time_to_live_status);
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(());
        }
        let spec = built(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build(),
        )?;
        let updated = self
            .retry
            .call("UpdateTimeToLive", || {
                self.client
                    .update_time_to_live()
                    .table_name(&self.table)
                    .time_to_live_specification(spec.clone())
                    .send()
            })
            .await;
        match updated {
            // A concurrent init got there between our describe and update.
            Err(e) if e.message.contains("already enabled") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

pub(super) fn key_schema(hash: &str, range: &str) -> PortResult<Vec<KeySchemaElement>> {
    [(hash, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .map(|(name, key_type)| {
            built(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build(),
            )
        })
        .collect()
}

pub(super) fn gsi(name: &str, hash: &str, range: &str) -> PortResult<GlobalSecondaryIndex> {
    built(
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .set_key_schema(Some(key_schema(hash, range)?))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build(),
    )
}
