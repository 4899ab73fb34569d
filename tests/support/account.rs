#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! One emulated account with dormant's table, and the engine tests drive in it: the set-up the
//! engine suites share.

use aws_sdk_iam::types::Tag;
use aws_sdk_iam::Client;
use chrono::{DateTime, Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::Engine;
use dormant::domain::Policy;

use super::emulator::emulator;

pub const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

pub struct Account {
    pub id: String,
    pub iam: Client,
    /// Test time zero; IAM dates are set relative to it.
    pub now: DateTime<Utc>,
}

impl Account {
    /// A fresh account with dormant's table created.
    pub async fn new() -> Self {
        let id = emulator().new_account();
        let sdk = emulator().sdk_config_for(&id).await;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            "dormant",
            RetryPolicy::fast(),
        );
        store.init().await.unwrap();
        Account {
            iam: Client::new(&sdk),
            id,
            now: Utc::now(),
        }
    }

    pub async fn engine(&self, policy: Policy) -> Engine<AwsIam, DynamoStore> {
        let sdk = emulator().sdk_config_for(&self.id).await;
        Engine::new(
            AwsIam::new(Client::new(&sdk), self.id.clone(), RetryPolicy::fast()),
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                "dormant",
                RetryPolicy::fast(),
            ),
            policy,
            "controller",
        )
    }

    pub fn day(&self, n: i64) -> DateTime<Utc> {
        self.now + Duration::days(n)
    }

    /// A role created `created_days_ago`, never used.
    pub async fn role(&self, name: &str, created_days_ago: i64, tags: &[(&str, &str)]) {
        let mut req = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(TRUST);
        for (k, v) in tags {
            req = req.tags(Tag::builder().key(*k).value(*v).build().unwrap());
        }
        req.send().await.unwrap();
        emulator().backdate_role(
            &self.id,
            name,
            Some(self.now - Duration::days(created_days_ago)),
            None,
        );
    }

    /// A user created `created_days_ago`, with no credentials.
    pub async fn user(&self, name: &str, created_days_ago: i64) {
        self.iam.create_user().user_name(name).send().await.unwrap();
        emulator().backdate_user(
            &self.id,
            name,
            Some(self.now - Duration::days(created_days_ago)),
            None,
        );
    }

    /// An access key created `created_days_ago` and last used `used_days_ago`; its id.
    pub async fn key(&self, user: &str, created_days_ago: i64, used_days_ago: i64) -> String {
        let k = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let id = k.access_key().unwrap().access_key_id().to_string();
        emulator().backdate_access_key(
            &self.id,
            user,
            &id,
            Some(self.now - Duration::days(created_days_ago)),
            Some(self.now - Duration::days(used_days_ago)),
        );
        id
    }
}
