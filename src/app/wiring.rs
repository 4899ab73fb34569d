//! Builds the engine from the configuration and the AWS SDK configuration: the one place the
//! CLI and the Lambda share their start-up.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::adapters::access_advisor::{AwsAccessAdvisor, Poll};
use crate::adapters::access_analyzer::AccessAnalyzer;
use crate::adapters::dynamo::DynamoStore;
use crate::adapters::events::EventBridgePublisher;
use crate::adapters::iam::AwsIam;
use crate::adapters::metrics::ApiCalls;
use crate::adapters::retry::{classify, RetryPolicy};
use crate::adapters::ssm::SsmFallback;
use crate::app::engine::{Engine, FallbackSetup, CONTROLLER};
use crate::app::fleet::Fleet;
use crate::config::Account;
use crate::config::Config;
use crate::domain::PrincipalKind;
use crate::error::Result;
use crate::ports::Publisher;
use tracing::warn;

/// Who the audit trail names for steps this process takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The scheduled/event-driven controller.
    Controller,
    /// An operator at the CLI: their caller ARN.
    Caller,
}

pub struct Wired {
    pub fleet: Fleet<AwsIam, DynamoStore>,
    /// Every AWS request the fleet's clients send, by operation.
    pub api_calls: ApiCalls,
    /// The account dormant runs in (where its table lives).
    pub account: String,
    pub caller_arn: String,
}

/// Resolves the caller (STS), protects the caller's own identity, and builds the engine with the
/// event publisher and, when an automation role is configured, the SSM fallback.
pub async fn wire(
    config: &Config,
    aws: &SdkConfig,
    actor: Actor,
    retry: RetryPolicy,
) -> Result<Wired> {
    // `RetryPolicy` retries with backoff and jitter; SDK retries underneath would multiply it.
    let aws = &aws
        .to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let calls = ApiCalls::default();
    // Every client counts its requests through the same interceptor.
    macro_rules! client {
        ($sdk:ident, $conf:expr) => {
            $sdk::Client::from_conf(
                $sdk::config::Builder::from($conf)
                    .interceptor(calls.clone())
                    .build(),
            )
        };
    }
    let caller = client!(aws_sdk_sts, aws)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("GetCallerIdentity", e))?;
    let account = caller.account().unwrap_or_default().to_string();
    let caller_arn = caller.arn().unwrap_or("unknown").to_string();
    let mut policy = config.policy.clone();
    if let Some(me) = controller_identity(&caller_arn) {
        policy.exemptions.controller.push(me);
    }
    // The roles dormant assumes in member accounts are its own too.
    for a in &config.accounts {
        if let Some(role) = a.role_arn.as_deref().and_then(|r| r.rsplit('/').next()) {
            policy
                .exemptions
                .controller
                .push((PrincipalKind::Role, role.to_string()));
        }
    }
    let actor = match actor {
        Actor::Controller => CONTROLLER.to_string(),
        Actor::Caller => caller_arn.clone(),
    };
    let members: Vec<Account> = if config.accounts.is_empty() {
        vec![Account {
            id: account.clone(),
            role_arn: None,
        }]
    } else {
        config.accounts.clone()
    };
    let publisher: Arc<dyn Publisher> = Arc::new(EventBridgePublisher::new(
        client!(aws_sdk_eventbridge, aws),
        config.event_bus.clone(),
        retry,
    ));
    let fallback = config.automation_role.as_ref().map(|role| FallbackSetup {
        runner: Arc::new(SsmFallback::new(client!(aws_sdk_ssm, aws), retry)),
        automation_role: role.clone(),
        always: config.ssm_steps.clone(),
    });
    let mut fleet = Fleet {
        engines: Vec::new(),
        unreachable: Vec::new(),
        concurrency: config.max_concurrent_accounts,
        // Enrichment is optional: a couple of retries, not the Lambda's whole budget.
        analyzer: Some(Arc::new(AccessAnalyzer::new(
            client!(aws_sdk_accessanalyzer, aws),
            RetryPolicy {
                max_times: retry.max_times.min(2),
                ..retry
            },
        ))),
    };
    for member in members {
        let member_aws = match (&member.role_arn, member.id == account) {
            (None, true) => aws.clone(),
            (Some(role), _) => match assume(aws, role).await {
                Ok(c) => c,
                Err(why) => {
                    warn!(account = %member.id, %why, "cannot reach account");
                    fleet.unreachable.push((member.id.clone(), why));
                    continue;
                }
            },
            (None, false) => {
                fleet.unreachable.push((
                    member.id.clone(),
                    "no role to assume (accounts[].role)".to_string(),
                ));
                continue;
            }
        };
        let mut engine = Engine::new(
            AwsIam::new(client!(aws_sdk_iam, &member_aws), member.id.clone(), retry),
            // State, events and automation stay in the controller's account.
            DynamoStore::new(client!(aws_sdk_dynamodb, aws), config.table.clone(), retry),
            policy.clone(),
            actor.clone(),
        )
        .with_publisher(publisher.clone());
        if config.policy.inactivity.confirm_with_access_advisor {
            // Access Advisor reports on the member account's principals: its own IAM client.
            engine = engine.with_advisor(Arc::new(AwsAccessAdvisor::new(
                client!(aws_sdk_iam, &member_aws),
                retry,
                Poll::default(),
            )));
        }
        if let Some(f) = &fallback {
            engine = engine.with_fallback(f.clone());
        }
        fleet.engines.push(Arc::new(engine));
    }
    Ok(Wired {
        fleet,
        api_calls: calls,
        account,
        caller_arn,
    })
}

/// Credentials for `role`, assumed now so that a denied AssumeRole is reported for its account
/// up front instead of failing every call later.
async fn assume(aws: &SdkConfig, role: &str) -> std::result::Result<SdkConfig, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .configure(aws)
        .session_name("dormant")
        .build()
        .await;
    provider.provide_credentials().await.map_err(|e| {
        format!(
            "AssumeRole {role}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(e)
        )
    })?;
    Ok(aws
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build())
}

/// The role or user dormant runs as, from the caller ARN: always protected.
pub fn controller_identity(arn: &str) -> Option<(PrincipalKind, String)> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    match parts.next()? {
        "assumed-role" => Some((PrincipalKind::Role, parts.next()?.to_string())),
        "user" => Some((PrincipalKind::User, parts.next_back()?.to_string())),
        "role" => Some((PrincipalKind::Role, parts.next_back()?.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_is_found_from_the_caller_arn() {
        assert_eq!(
            controller_identity("arn:aws:sts::123456789012:assumed-role/dormant-controller/lambda"),
            Some((PrincipalKind::Role, "dormant-controller".into()))
        );
        assert_eq!(
            controller_identity("arn:aws:iam::123456789012:user/ops/alice"),
            Some((PrincipalKind::User, "alice".into()))
        );
        assert_eq!(controller_identity("arn:aws:iam::123456789012:root"), None);
    }
}
