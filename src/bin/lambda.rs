//! `dormant-lambda`: cold start wires tracing, configuration and SDK clients once; each invocation
//! goes to `dormant::lambda::invoke_within`, bounded by the time the Lambda has left.
//!
//! Environment: `DORMANT_CONFIG` (the configuration as JSON; default: all defaults),
//! `DORMANT_FUNCTION` (`controller`, the default: events and the sweep queue; `answers`: owners'
//! answers through the function URL, nothing else), `DORMANT_SWEEP_QUEUE_URL` (controller; set:
//! the scheduled sweep queues one request per account there instead of sweeping them itself; the
//! same function consumes the queue) and `DORMANT_MEMBER_ROLE_NAME` (answers: the role assumed
//! in member accounts instead of `accounts[].role`'s).

use dormant::adapters::clock::Clock;
use dormant::adapters::retry::RetryPolicy;
use dormant::adapters::secrets::load_secrets;
use dormant::answers::FactoryEngines;
use dormant::app::answer::{AnswerHandler, AnswerService};
use dormant::app::fanout::{FanOut, SweepFanOut};
use dormant::config::Config;
use dormant::inbound::eventbridge::ClassifyRules;
use dormant::lambda::Function;
use dormant::wiring::{Actor, EngineFactory, LazyFleet, OnDemand};
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
    let function =
        Function::from_env(std::env::var(dormant::lambda::FUNCTION_ENV).ok().as_deref())?;
    let config = match std::env::var("DORMANT_CONFIG") {
        Ok(json) => Config::from_json(&json)?,
        Err(_) => Config::from_toml("")?,
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    // Only the caller is resolved here: roles are assumed when an event or a queued sweep
    // request first needs an account, not for every account before the first message.
    let factory =
        EngineFactory::new(&config, &aws, Actor::Controller, RetryPolicy::default()).await?;
    let fleet = LazyFleet::new(&factory);
    let rules = ClassifyRules::from_config(&config);
    let fanout = match std::env::var("DORMANT_SWEEP_QUEUE_URL") {
        Ok(url) if function == Function::Controller && !url.trim().is_empty() => Some(FanOut {
            members: factory.members.clone(),
            directory: factory.directory(),
            queue: factory.sweep_queue(url.trim()),
        }),
        _ => None,
    };
    let engines = OnDemand::new(&factory, None);
    // Owners' answers (the answers function only): keys read once per cold start (a rotation
    // keeps the previous key configured until the links it signed have expired). Without them
    // the function can do nothing: a start-up error.
    let secrets = match (function, &config.answers) {
        (Function::Controller, _) => None,
        (Function::Answers, None) => {
            return Err(
                "DORMANT_FUNCTION=answers needs [answers] in the configuration (key_source)".into(),
            )
        }
        (Function::Answers, Some(answers)) => Some(load_secrets(answers, &factory.ssm()).await?),
    };
    let answer_store = factory.store();
    let answer_engines = match std::env::var("DORMANT_MEMBER_ROLE_NAME") {
        Ok(name) if !name.trim().is_empty() => FactoryEngines::new(&factory).assuming(name.trim()),
        _ => FactoryEngines::new(&factory),
    };
    let answer_service = secrets.as_ref().map(|s| AnswerService {
        keys: &s.keys,
        slack_secret: s.slack.as_deref(),
        engines: &answer_engines,
        ledger: &answer_store,
    });
    let cold = dormant::lambda::ColdStart {
        function,
        fleet: &fleet,
        rules: &rules,
        engines: &engines,
        fanout: fanout.as_ref().map(|f| f as &dyn SweepFanOut),
        concurrency: config.max_concurrent_accounts,
        answers: answer_service.as_ref().map(|s| s as &dyn AnswerHandler),
    };
    let (cold, clock) = (&cold, Clock::system());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The context's deadline (ms since the epoch) bounds the whole invocation.
        let now = clock.now();
        let left_ms = i128::from(event.context.deadline) - i128::from(now.timestamp_millis());
        let remaining =
            std::time::Duration::from_millis(u64::try_from(left_ms.max(0)).unwrap_or(u64::MAX));
        dormant::lambda::invoke_within(event.payload, cold, now, remaining).await
    }))
    .await
}
