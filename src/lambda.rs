//! The Lambda's shell: one invocation in, routed to the event handling or the sweep queue's
//! consumer in `app`, or an owner's answer from the function URL (`app::answer`), its answer out.
//! `bin/lambda.rs` builds a [`ColdStart`] once. The same binary is deployed twice: as the
//! controller (events, sweeps) and as the answers function (the function URL only), and each
//! refuses what the other serves ([`Function`]).

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;

use crate::app::answer::http::{from_function_url, is_function_url_event, to_function_url};
use crate::app::answer::{AnswerHandler, HttpResponse};
use crate::app::deadline::{self, Deadline};
use crate::app::event::{handle_event, EventError};
use crate::app::fanout::SweepFanOut;
use crate::app::fleet::{Engines, FleetSource};
use crate::app::sweep_queue::{is_sqs_event, sweep_requested};
use crate::domain::Timestamp;
use crate::error::Error;
use crate::inbound::eventbridge::ClassifyRules;
use crate::ports::{ErrorKind, Iam, PortError, Store};

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(e: EventError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: if e.is_retryable() {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .to_string(),
            error_message: e.to_string(),
        }
    }
}

/// The environment variable that says which function this is (set by the CDK stack).
pub const FUNCTION_ENV: &str = "DORMANT_FUNCTION";

/// Which of dormant's two functions this binary runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// EventBridge events and the sweep queue; never a function-URL request.
    Controller,
    /// Owners' answers through the function URL, and nothing else: the internet reaches this
    /// one, under a role that can only do what answers do.
    Answers,
}

impl Function {
    /// [`FUNCTION_ENV`]'s value: unset, empty or `controller` is the controller; anything but
    /// `answers` besides is a start-up error naming it.
    pub fn from_env(value: Option<&str>) -> Result<Function, Error> {
        match value.map(str::trim) {
            None | Some("") | Some("controller") => Ok(Function::Controller),
            Some("answers") => Ok(Function::Answers),
            Some(other) => Err(Error::Usage(format!(
                "{FUNCTION_ENV}={other:?} is not a dormant function: `controller` (or unset) or `answers`"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Function::Controller => "controller",
            Function::Answers => "answers",
        }
    }
}

/// What the Lambda handles events with, built once at cold start.
pub struct ColdStart<'a, I, S, E: ?Sized> {
    /// Which function this is: what it serves, and what it refuses.
    pub function: Function,
    /// The fleet for EventBridge events, built when the first one needs it.
    pub fleet: &'a dyn FleetSource<I, S>,
    pub rules: &'a ClassifyRules,
    /// Engines for the accounts of queued sweep requests.
    pub engines: &'a E,
    /// `Some` when the scheduled sweep fans out through the sweep queue.
    pub fanout: Option<&'a dyn SweepFanOut>,
    pub concurrency: usize,
    /// The owners' answer page behind the function URL (`[answers]`); `None`: not configured.
    pub answers: Option<&'a dyn AnswerHandler>,
}

/// How long before the Lambda's deadline an invocation gives up: time to answer and log.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long before that a run stops starting identities (`app::deadline`), so that the steps
/// under way finish and the run records where it stopped before the invocation gives up.
pub const RUN_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// [`invoke`], bounded by the time the Lambda has left (less [`DEADLINE_MARGIN`]): past it the
/// invocation stops where it is and fails as retryable, instead of being killed mid-call. Every
/// step is write-ahead, so the next run or the retry carries on from the intents. Before that,
/// [`RUN_MARGIN`] earlier, its runs stop starting identities and record where they stopped.
pub async fn invoke_within<I, S, E>(
    payload: Value,
    cold: &ColdStart<'_, I, S, E>,
    now: Timestamp,
    remaining: std::time::Duration,
) -> Result<Value, EventError>
where
    I: Iam + 'static,
    S: Store + 'static,
    E: Engines<I, S> + ?Sized,
{
    let budget = remaining.saturating_sub(DEADLINE_MARGIN);
    let runs_until = Deadline::after(budget.saturating_sub(RUN_MARGIN));
    let bounded = deadline::within(Some(runs_until), invoke(payload, cold, now));
    match tokio::time::timeout(budget, bounded).await {
        Ok(answer) => answer,
        Err(_) => Err(EventError::Failed(Error::Port(PortError::new(
            ErrorKind::Transient,
            "Lambda",
            format!(
                "stopped {}s before the Lambda's deadline; pending steps continue on the next run",
                DEADLINE_MARGIN.as_secs()
            ),
        )))),
    }
}

/// What names an invocation in a refusal: the event's id, else the request's.
fn event_id(payload: &Value) -> String {
    payload["id"]
        .as_str()
        .or(payload["requestContext"]["requestId"].as_str())
        .unwrap_or("(no id)")
        .to_string()
}

/// One Lambda invocation: an SQS batch from the sweep queue (answered with `batchItemFailures`)
/// or an EventBridge event (answered with its report) for the controller; a function-URL
/// request (answered with the page) for the answers function. Each refuses the other's.
pub async fn invoke<I, S, E>(
    payload: Value,
    cold: &ColdStart<'_, I, S, E>,
    now: Timestamp,
) -> Result<Value, EventError>
where
    I: Iam + 'static,
    S: Store + 'static,
    E: Engines<I, S> + ?Sized,
{
    let url_request = is_function_url_event(&payload);
    if url_request != (cold.function == Function::Answers) {
        // Nothing is done: a failed invocation (never retried: it can never succeed here).
        let what = if url_request {
            "a function-URL request"
        } else {
            "an event that is not a function-URL request"
        };
        let err = EventError::Malformed {
            id: event_id(&payload),
            reason: format!(
                "{what} reached the {} function ({FUNCTION_ENV}={}), which does not serve it; nothing was done",
                cold.function.name(),
                cold.function.name()
            ),
        };
        tracing::error!(error = %err, "refused");
        return Err(err);
    }
    if url_request {
        // Every request answers with a page; a bad one is refused on it, never retried.
        let response = match (cold.answers, from_function_url(&payload)) {
            (Some(svc), Ok(req)) => svc.answer(&req, now).await,
            (None, _) => HttpResponse::html(404, "answers are not configured".to_string()),
            (_, Err(e)) => HttpResponse::html(400, format!("malformed request: {e}")),
        };
        return Ok(to_function_url(&response));
    }
    let answer = if is_sqs_event(&payload) {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(|e| EventError::Malformed {
                id: "(SQS batch)".to_string(),
                reason: e.to_string(),
            })?;
        let report = sweep_requested(&event, cold.engines, cold.concurrency, now).await;
        serde_json::to_value(report.batch_response())
    } else {
        let report = handle_event(&payload, cold.fleet, cold.rules, cold.fanout, now).await?;
        serde_json::to_value(report)
    };
    answer.map_err(|e| {
        EventError::Failed(Error::Rejected(format!("cannot serialize the answer: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_is_named_by_its_environment_and_an_unknown_name_is_refused() {
        for unset in [None, Some(""), Some("controller"), Some(" controller ")] {
            assert_eq!(Function::from_env(unset).unwrap(), Function::Controller);
        }
        assert_eq!(
            Function::from_env(Some("answers")).unwrap(),
            Function::Answers
        );
        let err = Function::from_env(Some("answer")).unwrap_err().to_string();
        assert!(
            err.contains("DORMANT_FUNCTION") && err.contains("\"answer\""),
            "{err}"
        );
    }

    #[test]
    fn a_refusal_names_the_event_or_the_request() {
        assert_eq!(event_id(&serde_json::json!({"id": "e-1"})), "e-1");
        assert_eq!(
            event_id(&serde_json::json!({"requestContext": {"requestId": "r-1"}})),
            "r-1"
        );
        assert_eq!(event_id(&serde_json::json!({"Records": []})), "(no id)");
    }
}
