//! `dormant-lambda`: cold start wires tracing, configuration and SDK clients once; each invocation
//! goes to `dormant::lambda::handle`.

use dormant::adapters::clock::Clock;
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::{classify, RetryPolicy};
use dormant::app::engine::{Engine, CONTROLLER};
use dormant::config::Config;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DORMANT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();

    // Fail fast at cold start: a bad configuration is a deployment error, not an event error.
    let config = match std::env::var("DORMANT_CONFIG") {
        Ok(json) => Config::from_json(&json)?,
        Err(_) => Config::from_toml("")?,
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let caller = aws_sdk_sts::Client::new(&aws)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("GetCallerIdentity", e))?;
    let account = caller.account().unwrap_or_default().to_string();
    let mut policy = config.policy.clone();
    if let Some(me) = dormant::cli::controller_identity(caller.arn().unwrap_or_default()) {
        policy.exemptions.controller.push(me);
    }
    let retry = RetryPolicy::default();
    let engine = Engine::new(
        AwsIam::new(aws_sdk_iam::Client::new(&aws), account, retry),
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.table.clone(),
            retry,
        ),
        policy,
        CONTROLLER,
    );
    let engine = &engine;
    let clock = Clock::system();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        dormant::lambda::handle(&event.payload, engine, clock.now()).await
    }))
    .await
}
