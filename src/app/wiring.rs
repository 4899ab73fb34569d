//! Builds the engine from the configuration and the AWS SDK configuration: the one place the
//! CLI and the Lambda share their start-up.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::adapters::dynamo::DynamoStore;
use crate::adapters::events::EventBridgePublisher;
use crate::adapters::iam::AwsIam;
use crate::adapters::retry::{classify, RetryPolicy};
use crate::adapters::ssm::SsmFallback;
use crate::app::engine::{Engine, FallbackSetup, CONTROLLER};
use crate::config::Config;
use crate::domain::PrincipalKind;
use crate::error::Result;

/// Who the audit trail names for steps this process takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The scheduled/event-driven controller.
    Controller,
    /// An operator at the CLI: their caller ARN.
    Caller,
}

pub struct Wired {
    pub engine: Engine<AwsIam, DynamoStore>,
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
    let caller = aws_sdk_sts::Client::new(aws)
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
    let actor = match actor {
        Actor::Controller => CONTROLLER.to_string(),
        Actor::Caller => caller_arn.clone(),
    };
    let mut engine = Engine::new(
        AwsIam::new(aws_sdk_iam::Client::new(aws), account.clone(), retry),
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            config.table.clone(),
            retry,
        ),
        policy,
        actor,
    )
    .with_publisher(Arc::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(aws),
        config.event_bus.clone(),
        retry,
    )));
    if let Some(role) = &config.automation_role {
        engine = engine.with_fallback(FallbackSetup {
            runner: Arc::new(SsmFallback::new(aws_sdk_ssm::Client::new(aws), retry)),
            automation_role: role.clone(),
            always: config.ssm_steps.clone(),
        });
    }
    Ok(Wired {
        engine,
        account,
        caller_arn,
    })
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
