#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! One emulated account: the set-up every emulator suite shares. A fresh account (with or
//! without dormant's table), identities built through the SDK and backdated through the emulator,
//! the engine with a given policy, the `dormant` binary run in it, and reads of IAM state back.

use std::collections::BTreeMap;
use std::ops::Deref;

use aws_config::SdkConfig;
use aws_sdk_iam::types::{StatusType, Tag};
use aws_sdk_iam::Client;
use chrono::{DateTime, Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::Engine;
use dormant::domain::{Outcome, Policy, Principal, Subject};
use dormant::ports::Store;
use serde_json::Value;

use super::cli::Dormant;
use super::emulator::emulator;

/// The trust policy of every role the tests create (moto does not evaluate it).
pub const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// A console password IAM's default password policy accepts.
pub const PASSWORD: &str = "Correct-Horse-Battery-9";

/// An identity policy allowing one harmless action.
pub const ALLOW_S3: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

/// An identity policy allowing everything.
pub const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// IAM calls that change an identity; a protected, exempt or re-created identity must never see
/// one.
pub const MUTATING: &[&str] = &[
    "TagRole",
    "UntagRole",
    "TagUser",
    "UntagUser",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "PutUserPolicy",
    "DeleteUserPolicy",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "DeleteRole",
    "DeleteUser",
    "DeleteLoginProfile",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "RemoveRoleFromInstanceProfile",
    "RemoveUserFromGroup",
    "DeactivateMFADevice",
];

/// The engine the suites drive: emulated IAM and DynamoDB.
pub type TestEngine = Engine<AwsIam, DynamoStore>;

pub struct Account {
    pub id: String,
    pub iam: Client,
    /// Test time zero; IAM dates are set relative to it.
    pub now: DateTime<Utc>,
}

impl Account {
    /// A fresh account with dormant's table created.
    pub async fn new() -> Self {
        Self::at(Utc::now()).await
    }

    /// A fresh account with dormant's table, its time zero `now`.
    pub async fn at(now: DateTime<Utc>) -> Self {
        let account = Self::open(emulator().new_account(), now).await;
        account.store().await.init().await.unwrap();
        account
    }

    /// A fresh account without dormant's table (adapter tests, member accounts, `dormant init`).
    pub async fn without_table() -> Self {
        Self::open(emulator().new_account(), Utc::now()).await
    }

    /// An account the emulator already knows (e.g. one AWS Organizations created), as it is.
    pub async fn existing(id: &str) -> Self {
        Self::open(id.to_string(), Utc::now()).await
    }

    async fn open(id: String, now: DateTime<Utc>) -> Self {
        let sdk = emulator().sdk_config_for(&id).await;
        Account {
            iam: Client::new(&sdk),
            id,
            now,
        }
    }

    /// SDK configuration signed as this account (SDK retries off).
    pub async fn sdk(&self) -> SdkConfig {
        emulator().sdk_config_for(&self.id).await
    }

    /// dormant's table in this account.
    pub async fn store(&self) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk().await),
            "dormant",
            RetryPolicy::fast(),
        )
    }

    /// The IAM adapter over this account (short retry policy).
    pub async fn adapter(&self) -> AwsIam {
        AwsIam::new(
            Client::new(&self.sdk().await),
            self.id.clone(),
            RetryPolicy::fast(),
        )
    }

    /// The engine with `policy` over this account's IAM and table, acting as "controller".
    pub async fn engine(&self, policy: Policy) -> TestEngine {
        Engine::new(
            self.adapter().await,
            self.store().await,
            policy,
            "controller",
        )
        .with_wall_clock(std::sync::Arc::new(chrono::Utc::now))
    }

    /// The `dormant` binary, run in this account from a directory of its own.
    pub fn dormant(&self) -> Dormant {
        Dormant::new(&self.id, self.now)
    }

    /// `now + n days`.
    pub fn day(&self, n: i64) -> DateTime<Utc> {
        self.now + Duration::days(n)
    }

    /// `now - n days`.
    pub fn days_ago(&self, n: i64) -> DateTime<Utc> {
        self.now - Duration::days(n)
    }

    pub fn role_principal(&self, name: &str) -> Principal {
        Principal::role(&self.id, "/", name)
    }

    pub fn user_principal(&self, name: &str) -> Principal {
        Principal::user(&self.id, "/", name)
    }

    /// The whole role `name` (path `/`), as the store keys it.
    pub fn role_subject(&self, name: &str) -> Subject {
        Subject::whole(self.role_principal(name))
    }

    // ---- identities ---------------------------------------------------------------------------

    /// A role created `created_days_ago`, never used.
    pub async fn role(&self, name: &str, created_days_ago: i64, tags: &[(&str, &str)]) {
        self.role_with("/", name, created_days_ago, None, tags)
            .await;
    }

    /// A role under `path`, created `created_days_ago` and last used `last_used_days_ago` (never
    /// if `None`); its unique id.
    pub async fn role_with(
        &self,
        path: &str,
        name: &str,
        created_days_ago: i64,
        last_used_days_ago: Option<i64>,
        tags: &[(&str, &str)],
    ) -> String {
        let id = self.create_role(path, name, tags).await;
        emulator().backdate_role(
            &self.id,
            name,
            Some(self.days_ago(created_days_ago)),
            last_used_days_ago.map(|d| self.days_ago(d)),
        );
        id
    }

    /// A role as IAM creates it (created now, never used); its unique id.
    pub async fn create_role(&self, path: &str, name: &str, tags: &[(&str, &str)]) -> String {
        self.iam
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(TRUST)
            .set_tags(tag_list(tags))
            .send()
            .await
            .unwrap()
            .role()
            .unwrap()
            .role_id()
            .to_string()
    }

    /// A role under `/app/` with everything a snapshot keeps of the role itself: a description, a
    /// two-hour session, the permissions boundary `boundary`, the trust policy [`encoded_trust`]
    /// and `tags`.
    /// Deletes the role `name` (which must have no policies attached) and creates another under
    /// the same name at path `/`: the new role's unique id.
    pub async fn recreate_role(&self, name: &str) -> String {
        self.iam.delete_role().role_name(name).send().await.unwrap();
        self.create_role("/", name, &[]).await
    }

    pub async fn described_role(&self, name: &str, boundary: &str, tags: &[(&str, &str)]) {
        self.iam
            .create_role()
            .role_name(name)
            .path("/app/")
            .assume_role_policy_document(encoded_trust().to_string())
            .description("Runs the nightly job")
            .max_session_duration(7200)
            .permissions_boundary(boundary)
            .set_tags(tag_list(tags))
            .send()
            .await
            .unwrap();
    }

    /// A user created `created_days_ago`, with no credentials.
    pub async fn user(&self, name: &str, created_days_ago: i64) {
        self.user_with("/", name, created_days_ago, None, false)
            .await;
    }

    /// A user under `path` created `created_days_ago`; with a console password if `console`,
    /// last used `password_last_used_days_ago` (never if `None`).
    pub async fn user_with(
        &self,
        path: &str,
        name: &str,
        created_days_ago: i64,
        password_last_used_days_ago: Option<i64>,
        console: bool,
    ) {
        self.tagged_user(
            path,
            name,
            created_days_ago,
            password_last_used_days_ago,
            console,
            &[],
        )
        .await;
    }

    /// [`Account::user_with`], the user created with `tags`.
    pub async fn tagged_user(
        &self,
        path: &str,
        name: &str,
        created_days_ago: i64,
        password_last_used_days_ago: Option<i64>,
        console: bool,
        tags: &[(&str, &str)],
    ) {
        self.create_user(path, name, tags).await;
        if console {
            self.console(name).await;
        }
        emulator().backdate_user(
            &self.id,
            name,
            Some(self.days_ago(created_days_ago)),
            password_last_used_days_ago.map(|d| self.days_ago(d)),
        );
    }

    /// A user as IAM creates it (created now, no credentials); its unique id.
    pub async fn create_user(&self, path: &str, name: &str, tags: &[(&str, &str)]) -> String {
        self.iam
            .create_user()
            .user_name(name)
            .path(path)
            .set_tags(tag_list(tags))
            .send()
            .await
            .unwrap()
            .user()
            .unwrap()
            .user_id()
            .to_string()
    }

    /// Gives `user` a console password ([`PASSWORD`]).
    pub async fn console(&self, user: &str) {
        self.iam
            .create_login_profile()
            .user_name(user)
            .password(PASSWORD)
            .send()
            .await
            .unwrap();
    }

    /// An active access key created `created_days_ago` and last used `used_days_ago`; its id.
    pub async fn key(&self, user: &str, created_days_ago: i64, used_days_ago: i64) -> String {
        self.key_with(user, created_days_ago, Some(used_days_ago), true)
            .await
    }

    /// An access key created `created_days_ago`, last used `last_used_days_ago` (never if
    /// `None`), turned off unless `active`; its id.
    pub async fn key_with(
        &self,
        user: &str,
        created_days_ago: i64,
        last_used_days_ago: Option<i64>,
        active: bool,
    ) -> String {
        let id = self.create_key(user).await;
        emulator().backdate_access_key(
            &self.id,
            user,
            &id,
            Some(self.days_ago(created_days_ago)),
            last_used_days_ago.map(|d| self.days_ago(d)),
        );
        if !active {
            self.deactivate_key(user, &id).await;
        }
        id
    }

    /// An access key as IAM creates it (created now, active, never used); its id.
    pub async fn create_key(&self, user: &str) -> String {
        self.iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .access_key()
            .unwrap()
            .access_key_id()
            .to_string()
    }

    /// The key's owner turns it off.
    pub async fn deactivate_key(&self, user: &str, key: &str) {
        self.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(StatusType::Inactive)
            .send()
            .await
            .unwrap();
    }

    /// A customer-managed policy with `document`; its ARN.
    pub async fn create_policy(&self, name: &str, document: &str) -> String {
        create_policy_with(&self.iam, name, document).await
    }

    pub async fn attach_role_policy(&self, role: &str, arn: &str) {
        self.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(arn)
            .send()
            .await
            .unwrap();
    }

    pub async fn attach_user_policy(&self, user: &str, arn: &str) {
        self.iam
            .attach_user_policy()
            .user_name(user)
            .policy_arn(arn)
            .send()
            .await
            .unwrap();
    }

    pub async fn put_role_policy(&self, role: &str, name: &str, document: &str) {
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .unwrap();
    }

    pub async fn put_user_policy(&self, user: &str, name: &str, document: &str) {
        self.iam
            .put_user_policy()
            .user_name(user)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .unwrap();
    }

    /// Group `group`, with `user` in it.
    pub async fn group_with(&self, group: &str, user: &str) {
        self.iam
            .create_group()
            .group_name(group)
            .send()
            .await
            .unwrap();
        self.iam
            .add_user_to_group()
            .group_name(group)
            .user_name(user)
            .send()
            .await
            .unwrap();
    }

    /// Instance profile `name`, with `role` in it.
    pub async fn instance_profile_with(&self, name: &str, role: &str) {
        self.iam
            .create_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .unwrap();
        self.iam
            .add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
            .unwrap();
    }

    /// The role's owner tags it.
    pub async fn tag_role(&self, name: &str, tags: &[(&str, &str)]) {
        self.iam
            .tag_role()
            .role_name(name)
            .set_tags(tag_list(tags))
            .send()
            .await
            .unwrap();
    }

    /// The user's owner tags it.
    pub async fn tag_user(&self, name: &str, tags: &[(&str, &str)]) {
        self.iam
            .tag_user()
            .user_name(name)
            .set_tags(tag_list(tags))
            .send()
            .await
            .unwrap();
    }

    // ---- reading IAM back ---------------------------------------------------------------------

    pub async fn role_exists(&self, name: &str) -> bool {
        self.iam.get_role().role_name(name).send().await.is_ok()
    }

    /// Whether the user has a console password.
    pub async fn has_console(&self, user: &str) -> bool {
        self.iam
            .get_login_profile()
            .user_name(user)
            .send()
            .await
            .is_ok()
    }

    /// The `RoleId` IAM gave the role.
    pub async fn role_id(&self, name: &str) -> String {
        let out = self.iam.get_role().role_name(name).send().await.unwrap();
        out.role().unwrap().role_id().to_string()
    }

    /// The `UserId` IAM gave the user.
    pub async fn user_id(&self, name: &str) -> String {
        let out = self.iam.get_user().user_name(name).send().await.unwrap();
        out.user().unwrap().user_id().to_string()
    }

    pub async fn role_tags(&self, name: &str) -> BTreeMap<String, String> {
        let out = self
            .iam
            .list_role_tags()
            .role_name(name)
            .max_items(100)
            .send()
            .await
            .unwrap();
        tag_map(out.tags())
    }

    pub async fn user_tags(&self, name: &str) -> BTreeMap<String, String> {
        let out = self
            .iam
            .list_user_tags()
            .user_name(name)
            .max_items(100)
            .send()
            .await
            .unwrap();
        tag_map(out.tags())
    }

    /// The names of the role's inline policies.
    pub async fn role_policies(&self, name: &str) -> Vec<String> {
        self.iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .policy_names()
            .to_vec()
    }

    /// dormant's quarantine policy in this account (the launcher creates it, as the member stack
    /// would).
    pub fn quarantine_arn(&self) -> String {
        dormant::domain::quarantine::policy_arn("aws", &self.id)
    }

    /// Whether dormant's quarantine policy is attached to the role.
    pub async fn role_quarantined(&self, name: &str) -> bool {
        self.attached_role_policies(name)
            .await
            .contains(&self.quarantine_arn())
    }

    /// Whether dormant's quarantine policy is attached to the user.
    pub async fn user_quarantined(&self, name: &str) -> bool {
        self.attached_user_policies(name)
            .await
            .contains(&self.quarantine_arn())
    }

    /// The ARNs of the managed policies attached to the user.
    pub async fn attached_user_policies(&self, name: &str) -> Vec<String> {
        self.iam
            .list_attached_user_policies()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect()
    }

    /// The ARNs of the managed policies attached to the role.
    pub async fn attached_role_policies(&self, name: &str) -> Vec<String> {
        self.iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect()
    }

    /// The role's inline policies by name, their documents parsed.
    pub async fn role_policy_documents(&self, name: &str) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for policy in self.role_policies(name).await {
            let doc = self
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .unwrap()
                .policy_document()
                .to_string();
            out.insert(policy, decode_document(&doc));
        }
        out
    }

    /// Access key id → status.
    pub async fn key_statuses(&self, user: &str) -> BTreeMap<String, StatusType> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .unwrap();
        out.access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap().to_string(),
                    k.status().unwrap().clone(),
                )
            })
            .collect()
    }

    // ---- the emulator's request log -----------------------------------------------------------

    /// The AWS requests this account made since the log was last cleared.
    pub fn requests(&self) -> Vec<Value> {
        emulator().requests(&self.id)
    }

    pub fn clear_requests(&self) {
        emulator().clear_requests(&self.id);
    }

    /// The [`MUTATING`] IAM calls that named `name` (as `RoleName` or `UserName`).
    pub fn mutations_of(&self, name: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| MUTATING.contains(&r["operation"].as_str().unwrap_or("")))
            .filter(|r| r["RoleName"] == name || r["UserName"] == name)
            .map(|r| r["operation"].as_str().unwrap_or("").to_string())
            .collect()
    }

    // ---- other services -------------------------------------------------------------------------

    /// An SQS queue; its URL and ARN.
    pub async fn queue(&self, name: &str) -> (String, String) {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn =
            attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        (url, arn)
    }

    /// A queue `queue` that receives, through rule `rule` on event bus `bus` (created unless it
    /// is `default`), every event whose source is `source`; the queue's URL.
    pub async fn events_to_queue(
        &self,
        bus: &str,
        rule: &str,
        source: &str,
        queue: &str,
    ) -> String {
        let (url, arn) = self.queue(queue).await;
        let events = aws_sdk_eventbridge::Client::new(&self.sdk().await);
        if bus != "default" {
            events.create_event_bus().name(bus).send().await.unwrap();
        }
        events
            .put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(serde_json::json!({ "source": [source] }).to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        url
    }
}

/// What the adapter suites drive: an [`Account`] without dormant's table (which it derefs to),
/// its SDK client `sdk` (SDK retries off: the adapter's backoff does the retrying) and the IAM
/// adapter `iam` over it.
pub struct Ctx {
    pub account: Account,
    pub sdk: Client,
    pub iam: AwsIam,
}

pub async fn ctx() -> Ctx {
    let account = Account::without_table().await;
    Ctx {
        sdk: account.iam.clone(),
        iam: account.adapter().await,
        account,
    }
}

impl Deref for Ctx {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.account
    }
}

/// The steps recorded done in `subject`'s audit trail, in order.
pub async fn steps_done(engine: &TestEngine, subject: &Subject) -> Vec<String> {
    engine
        .store
        .history(subject)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.outcome == Outcome::Done)
        .map(|e| e.step.clone())
        .collect()
}

/// `tags` as the SDK takes them (`None` for none).
pub fn tag_list(tags: &[(&str, &str)]) -> Option<Vec<Tag>> {
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
            .collect()
    })
}

/// Owned key-value pairs as `(&str, &str)`, the way [`Account::role`] and friends take tags.
pub fn as_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Tags as a key → value map.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// A trust policy with a condition whose spaces, '+', '%' and '/' make IAM's URL-encoding (and
/// its round trip through a snapshot) visible.
pub fn encoded_trust() -> Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Lambda and CI",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringLike": {"aws:PrincipalTag/team": "a+b %20 c/d"}}
        }]
    })
}

/// Whether an IAM error is `NoSuchEntity`.
pub fn is_no_such_entity<E: aws_sdk_iam::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("NoSuchEntity")
}

/// A policy document as IAM returns it (URL-encoded), parsed.
pub fn decode_document(doc: &str) -> Value {
    let text = percent_encoding::percent_decode_str(doc)
        .decode_utf8()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A customer-managed policy with `document`, created through `iam`; its ARN.
pub async fn create_policy_with(iam: &Client, name: &str, document: &str) -> String {
    iam.create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}
