//! A deployment in the enforcing emulator, built from the CDK's exported policies
//! (tests/fixtures/policies, kept equal to the synth by cdk/test/policy-export.test.ts): the
//! controller, answers and automation roles in a controller account, the member, answers and
//! automation roles in a member account, the state table and the sweep queue, and the controller
//! role's credentials.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::Credentials;
use aws_sdk_iam::Client as Iam;
use chrono::{Duration, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::retry::RetryPolicy;
use dormant::config::Config;
use dormant::wiring::{assemble, Actor, Assembly};
use serde_json::Value;

use crate::support::emulator::Emulator;

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policies");

/// The emulator of this test binary, with `--enforce`.
pub fn enforcing() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(Emulator::start_enforcing)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{POLICIES}/{file}"))
        .unwrap_or_else(|e| panic!("{POLICIES}/{file}: {e} (run `npm run policies` in cdk/)"))
}

pub struct Deployment {
    pub controller: String,
    pub member: String,
    pub table: String,
    pub queue_url: String,
    /// What the Lambda runs with: the controller role's session.
    pub lambda: SdkConfig,
}

impl Deployment {
    pub async fn new() -> Self {
        let e = enforcing();
        let (controller, member) = (e.new_account(), e.new_account());
        let names: Value = serde_json::from_str(&read("names.json")).unwrap();
        let placeholder = |k: &str| names[k].as_str().unwrap().to_string();
        let (c0, m0) = (
            placeholder("controllerAccount"),
            placeholder("memberAccount"),
        );
        let mut files: Vec<String> = std::fs::read_dir(POLICIES)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.contains(".dormant-"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 6, "{files:?}");
        for file in files {
            let text = read(&file).replace(&c0, &controller).replace(&m0, &member);
            let role: Value = serde_json::from_str(&text).unwrap();
            let iam = admin_iam(role["account"].as_str().unwrap()).await;
            let name = role["roleName"].as_str().unwrap();
            iam.create_role()
                .role_name(name)
                .assume_role_policy_document(role["trust"].to_string())
                .send()
                .await
                .unwrap();
            for (policy, document) in role["policies"].as_object().unwrap() {
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .policy_document(document.to_string())
                    .send()
                    .await
                    .unwrap();
            }
        }
        let admin = e.sdk_config_for(&controller).await;
        let table = placeholder("tableName");
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&admin),
            &table,
            RetryPolicy::fast(),
        )
        .init()
        .await
        .unwrap();
        let queue_url = aws_sdk_sqs::Client::new(&admin)
            .create_queue()
            .queue_name(placeholder("sweepQueueName"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let lambda = session(&admin, &controller, "dormant-controller").await;
        Deployment {
            controller,
            member,
            table,
            queue_url,
            lambda,
        }
    }

    /// The configuration the CDK writes (table, member account, automation role) plus `extra`.
    /// `extra` goes at the top level, `fallback` into `[fallback]`.
    pub fn config(&self, extra: &str, fallback: &str) -> Config {
        let (c, m) = (&self.controller, &self.member);
        Config::from_toml(&format!(
            "table = \"{}\"\n{extra}\n\
             [[accounts]]\nid = \"{c}\"\n\
             [[accounts]]\nid = \"{m}\"\nrole = \"arn:aws:iam::{m}:role/dormant-member\"\n\
             [fallback]\nautomation_role = \"arn:aws:iam::{c}:role/dormant-automation\"\n{fallback}",
            self.table,
        ))
        .unwrap()
    }

    /// The controller as the Lambda assembles it, with its role's credentials.
    pub async fn assembly(&self, config: &Config) -> Assembly {
        assemble(config, &self.lambda, Actor::Controller, RetryPolicy::fast())
            .await
            .unwrap()
    }

    /// A role last used `days` ago, created before that.
    pub async fn role(&self, account: &str, name: &str, days: i64) -> String {
        let out = admin_iam(account)
            .await
            .create_role()
            .role_name(name)
            .assume_role_policy_document(ANYONE)
            .send()
            .await
            .unwrap();
        let ago = Utc::now() - Duration::days(days);
        enforcing().backdate_role(account, name, Some(ago), Some(ago));
        out.role().unwrap().role_id().to_string()
    }

    /// A user with an access key, both unused for `days`. Returns the user's unique id.
    pub async fn user(&self, account: &str, name: &str, days: i64) -> String {
        let iam = admin_iam(account).await;
        let out = iam.create_user().user_name(name).send().await.unwrap();
        let key = iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .unwrap();
        let ago = Utc::now() - Duration::days(days);
        let e = enforcing();
        e.backdate_user(account, name, Some(ago), None);
        let key_id = key.access_key().unwrap().access_key_id().to_string();
        e.backdate_access_key(account, name, &key_id, Some(ago), Some(ago));
        out.user().unwrap().user_id().to_string()
    }

    pub async fn exists(&self, account: &str, kind: &str, name: &str) -> bool {
        let iam = admin_iam(account).await;
        match kind {
            "role" => iam.get_role().role_name(name).send().await.is_ok(),
            _ => iam.get_user().user_name(name).send().await.is_ok(),
        }
    }

    fn log(&self) -> Vec<Value> {
        let e = enforcing();
        let mut all = e.requests(&self.controller);
        all.extend(e.requests(&self.member));
        all
    }

    /// Fails naming every request the deployed policies refused.
    pub fn assert_nothing_refused(&self, what: &str) {
        let refused: Vec<String> = self
            .log()
            .iter()
            .filter_map(|r| {
                r["denied"]
                    .as_str()
                    .map(|d| format!("AccessDenied: {d} ({})", r["caller"]))
            })
            .collect();
        assert!(
            refused.is_empty(),
            "{what}: the CDK roles refused what dormant needs:\n  {}",
            refused.join("\n  ")
        );
    }

    /// The IAM action of every request the roles made (`SendMessageBatch` is `sqs:SendMessage`).
    pub fn actions_called(&self) -> BTreeSet<String> {
        self.log()
            .iter()
            .filter(|r| r["caller"].is_string())
            .map(|r| {
                let action = format!(
                    "{}:{}",
                    r["service"].as_str().unwrap(),
                    r["operation"].as_str().unwrap()
                );
                match action.as_str() {
                    "sqs:SendMessageBatch" => "sqs:SendMessage".to_string(),
                    "access-analyzer:GetFindingV2" => "access-analyzer:GetFinding".to_string(),
                    _ => action,
                }
            })
            .collect()
    }

    /// Every action the roles called is one `dormant permissions` lists for the controller.
    pub fn assert_calls_are_listed(&self) {
        let listed: BTreeSet<String> = dormant::app::commands::permissions()
            .controller
            .values()
            .flatten()
            .map(|a| a.to_string())
            .collect();
        let unlisted: Vec<String> = self.actions_called().difference(&listed).cloned().collect();
        assert!(
            unlisted.is_empty(),
            "dormant called actions `dormant permissions` does not list (src/domain/permissions.rs): {unlisted:?}"
        );
    }

    /// The condition keys the emulator could not check, for the test's own record.
    pub fn ignored_conditions(&self) -> BTreeSet<String> {
        self.log()
            .iter()
            .flat_map(|r| {
                r["ignored_conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    }
}

/// A session of `role` in `account`, assumed by `admin` (who stands in for the Lambda service).
pub async fn session(admin: &SdkConfig, account: &str, role: &str) -> SdkConfig {
    let session = aws_sdk_sts::Client::new(admin)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{role}"))
        .role_session_name("dormant-lambda")
        .send()
        .await
        .unwrap();
    let creds = session.credentials().unwrap();
    aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "dormant-lambda",
        ))
        .region(Region::new("us-east-1"))
        .endpoint_url(enforcing().endpoint())
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

const ANYONE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

pub async fn admin_iam(account: &str) -> Iam {
    Iam::new(&enforcing().sdk_config_for(account).await)
}

/// The status of `user`'s key `id` (its first key's when `None`).
pub async fn key_status(
    iam: &Iam,
    user: &str,
    id: Option<&str>,
) -> Option<aws_sdk_iam::types::StatusType> {
    iam.list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap()
        .access_key_metadata()
        .iter()
        .find(|k| id.is_none_or(|id| k.access_key_id() == Some(id)))
        .and_then(|k| k.status().cloned())
}
