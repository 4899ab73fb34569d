//! `dormant-lambda`: cold start wires tracing, configuration and SDK clients once; each invocation
//! goes to `dormant::lambda::handle`.

use dormant::adapters::clock::Clock;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::wiring::{wire, Actor};
use dormant::config::Config;
use dormant::inbound::eventbridge::ClassifyRules;
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
    let wired = wire(&config, &aws, Actor::Controller, RetryPolicy::default()).await?;
    let rules = ClassifyRules::from_config(&config);
    let (fleet, rules) = (&wired.fleet, &rules);
    let clock = Clock::system();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        dormant::lambda::handle(&event.payload, fleet, rules, clock.now()).await
    }))
    .await
}
