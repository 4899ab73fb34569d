//! `SsmFallback` against mocked SSM answers (aws-smithy-mocks), not the moto emulator: moto does
//! not implement `StartAutomationExecution` / `GetAutomationExecution`, so these
//! tests pin the requests we send and feed back the answers SSM documents.
//!
//! Errors come two ways: as raw HTTP answers in SSM's JSON error shape (so the SDK's own error
//! parsing produces the code, as it would against AWS) and as modeled errors carrying the code in
//! their metadata (what that parsing yields for SSM's modeled exceptions).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::operation::get_automation_execution::{
    GetAutomationExecutionError, GetAutomationExecutionOutput,
};
use aws_sdk_ssm::operation::start_automation_execution::{
    StartAutomationExecutionError, StartAutomationExecutionOutput,
};
use aws_sdk_ssm::types::error::{
    AutomationDefinitionNotFoundException, AutomationExecutionNotFoundException,
    InvalidAutomationExecutionParametersException,
};
use aws_sdk_ssm::types::{AutomationExecution, AutomationExecutionStatus};
use aws_sdk_ssm::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use dormant::adapters::retry::RetryPolicy;
use dormant::adapters::ssm::{client_token, SsmFallback};
use dormant::domain::{AutomationRequest, AutomationStatus};
use dormant::ports::{ErrorKind, Fallback};

const DOC: &str = "Dormant-DeactivateAccessKeys";
const EXECUTION_ID: &str = "4f1c2a9e-5b7d-4e11-9a3c-0d2e6f8b1a77";
const ROLE: &str = "arn:aws:iam::111122223333:role/dormant-automation";

/// A client whose every call is answered by `rules`. SDK retries are off so that each of our
/// `RetryPolicy` attempts is exactly one request, and the counts below mean what they say.
fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules, |c| c
        .retry_config(RetryConfig::disabled()))
}

fn fallback(rules: &[&Rule]) -> SsmFallback {
    SsmFallback::new(client(rules), RetryPolicy::fast())
}

fn request(key_ids: &[&str]) -> AutomationRequest {
    let mut parameters = BTreeMap::new();
    parameters.insert("AutomationAssumeRole".to_string(), vec![ROLE.to_string()]);
    parameters.insert("PrincipalKind".to_string(), vec!["user".to_string()]);
    parameters.insert("PrincipalName".to_string(), vec!["alice".to_string()]);
    parameters.insert(
        "AccessKeyIds".to_string(),
        key_ids.iter().map(|s| s.to_string()).collect(),
    );
    AutomationRequest {
        document: DOC.to_string(),
        parameters,
        attempt: "arn:aws:iam::111122223333:user/alice#2026-01-01T00:00:00Z".to_string(),
    }
}

/// An SSM error answer as AWS sends it (awsJson1.1: the code in `__type`).
fn http_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
    )
}

fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn started() -> StartAutomationExecutionOutput {
    StartAutomationExecutionOutput::builder()
        .automation_execution_id(EXECUTION_ID)
        .build()
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn start_sends_the_document_and_parameters_with_a_stable_token() {
    let req = request(&["AKIAEXAMPLE1", "AKIAEXAMPLE2"]);
    let expected: HashMap<String, Vec<String>> = req.parameters.clone().into_iter().collect();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let rule = mock!(Client::start_automation_execution)
        .match_requests(move |r| {
            seen.lock()
                .unwrap()
                .push(r.client_token().map(str::to_string));
            r.document_name() == Some(DOC)
                && r.parameters() == Some(&expected)
                && r.document_version().is_none()
                && r.mode().is_none()
                && r.target_parameter_name().is_none()
                && r.targets().is_empty()
        })
        .then_output(started);
    let ssm = fallback(&[&rule]);

    assert_eq!(ssm.start(&req).await.unwrap(), EXECUTION_ID);
    // The same request again (a retried tick) carries the same token, so SSM does not launch twice.
    assert_eq!(ssm.start(&req.clone()).await.unwrap(), EXECUTION_ID);
    assert_eq!(rule.num_calls(), 2);

    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    let first = tokens[0].clone().expect("a ClientToken is sent");
    assert!(is_uuid(&first), "SSM wants a UUID-shaped token: {first}");
    assert_eq!(tokens[1].as_deref(), Some(first.as_str()));
    assert_eq!(first, client_token(&req));
    // Other keys, another document: another token.
    assert_ne!(first, client_token(&request(&["AKIAEXAMPLE1"])));
    let mut other_doc = req.clone();
    other_doc.document = "Dormant-ReactivateAccessKeys".to_string();
    assert_ne!(first, client_token(&other_doc));
}

#[tokio::test]
async fn start_retries_throttling_with_the_same_token() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let rule = mock!(Client::start_automation_execution)
        .match_requests(move |r| {
            seen.lock()
                .unwrap()
                .push(r.client_token().map(str::to_string));
            true
        })
        .sequence()
        .http_response(|| http_error(400, "ThrottlingException", "Rate exceeded"))
        .times(2)
        .output(started)
        .build();
    let ssm = fallback(&[&rule]);
    let req = request(&["AKIAEXAMPLE1"]);

    assert_eq!(ssm.start(&req).await.unwrap(), EXECUTION_ID);
    assert_eq!(rule.num_calls(), 3);
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(
        tokens.len(),
        3,
        "one request per attempt: SDK retries stay off"
    );
    assert!(tokens
        .iter()
        .all(|t| t.as_deref() == Some(client_token(&req).as_str())));
}

#[tokio::test]
async fn start_gives_up_on_persistent_5xx_as_transient() {
    let rule = mock!(Client::start_automation_execution)
        .then_http_response(|| http_error(500, "InternalServerError", "oops"));
    let ssm = fallback(&[&rule]);

    let err = ssm.start(&request(&[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(err.operation, "StartAutomationExecution");
    // The first try and `RetryPolicy::fast().max_times` retries.
    assert_eq!(rule.num_calls(), 1 + RetryPolicy::fast().max_times);
}

#[tokio::test]
async fn start_access_denied_is_not_retried() {
    let rule = mock!(Client::start_automation_execution).then_http_response(|| {
        http_error(
            400,
            "AccessDeniedException",
            "User is not authorized to perform: ssm:StartAutomationExecution",
        )
    });
    let ssm = fallback(&[&rule]);

    let err = ssm.start(&request(&["AKIAEXAMPLE1"])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert!(err.message.contains("AccessDeniedException"), "{err}");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn start_permanent_errors_keep_their_code_and_are_not_retried() {
    let cases: Vec<(&str, Rule)> = vec![
        (
            "AutomationDefinitionNotFoundException",
            mock!(Client::start_automation_execution).then_error(|| {
                StartAutomationExecutionError::AutomationDefinitionNotFoundException(
                    AutomationDefinitionNotFoundException::builder()
                        .message("no such document")
                        .meta(meta(
                            "AutomationDefinitionNotFoundException",
                            "no such document",
                        ))
                        .build(),
                )
            }),
        ),
        (
            "InvalidAutomationExecutionParametersException",
            mock!(Client::start_automation_execution).then_error(|| {
                StartAutomationExecutionError::InvalidAutomationExecutionParametersException(
                    InvalidAutomationExecutionParametersException::builder()
                        .message("unknown parameter")
                        .meta(meta(
                            "InvalidAutomationExecutionParametersException",
                            "unknown parameter",
                        ))
                        .build(),
                )
            }),
        ),
        (
            "IdempotentParameterMismatch",
            mock!(Client::start_automation_execution).then_http_response(|| {
                http_error(400, "IdempotentParameterMismatch", "token reused")
            }),
        ),
    ];
    for (code, rule) in cases {
        let ssm = fallback(&[&rule]);
        let err = ssm.start(&request(&["AKIAEXAMPLE1"])).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent, "{code}: {err}");
        assert!(err.message.contains(code), "{code}: {err}");
        assert_eq!(rule.num_calls(), 1, "{code}");
    }
}

#[tokio::test]
async fn start_concurrency_limit_is_transient_but_left_for_a_later_tick() {
    let rule = mock!(Client::start_automation_execution).then_http_response(|| {
        http_error(
            400,
            "AutomationExecutionLimitExceededException",
            "too many executions",
        )
    });
    let ssm = fallback(&[&rule]);

    let err = ssm.start(&request(&["AKIAEXAMPLE1"])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(rule.num_calls(), 1);
}

/// A client answering `GetAutomationExecution` for `EXECUTION_ID` with `status`.
fn status_rule(status: AutomationExecutionStatus, failure: Option<&str>) -> Rule {
    let failure = failure.map(str::to_string);
    mock!(Client::get_automation_execution)
        .match_requests(|r| r.automation_execution_id() == Some(EXECUTION_ID))
        .then_output(move || {
            GetAutomationExecutionOutput::builder()
                .automation_execution(
                    AutomationExecution::builder()
                        .automation_execution_id(EXECUTION_ID)
                        .document_name(DOC)
                        .automation_execution_status(status.clone())
                        .set_failure_message(failure.clone())
                        .build(),
                )
                .build()
        })
}

async fn status_of(status: AutomationExecutionStatus, failure: Option<&str>) -> AutomationStatus {
    let rule = status_rule(status, failure);
    let status = fallback(&[&rule]).status(EXECUTION_ID).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    status
}

#[tokio::test]
async fn status_maps_ssm_states() {
    use AutomationExecutionStatus as S;
    assert_eq!(
        status_of(S::Success, None).await,
        AutomationStatus::Succeeded
    );
    assert_eq!(
        status_of(S::Inprogress, None).await,
        AutomationStatus::Running
    );
    assert_eq!(status_of(S::Pending, None).await, AutomationStatus::Running);
    assert_eq!(status_of(S::Waiting, None).await, AutomationStatus::Running);

    let failure = "Step fails when it is Execute/Invoke AWS API. UpdateAccessKey: AccessDenied";
    match status_of(S::Failed, Some(failure)).await {
        AutomationStatus::Failed(reason) => {
            assert!(reason.contains(failure), "{reason}");
            assert!(reason.starts_with("Failed"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    match status_of(S::Timedout, None).await {
        AutomationStatus::Failed(reason) => assert!(reason.contains("TimedOut"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    match status_of(S::Cancelled, Some("Cancelled by operator")).await {
        AutomationStatus::Failed(reason) => {
            assert!(reason.contains("Cancelled by operator"), "{reason}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // A status this SDK does not know yet: keep polling.
    assert_eq!(
        status_of(S::from("SomethingNew"), None).await,
        AutomationStatus::Running
    );
}

#[tokio::test]
async fn status_of_an_unknown_execution_is_not_found() {
    let rule = mock!(Client::get_automation_execution).then_error(|| {
        GetAutomationExecutionError::AutomationExecutionNotFoundException(
            AutomationExecutionNotFoundException::builder()
                .message("no such execution")
                .meta(meta(
                    "AutomationExecutionNotFoundException",
                    "no such execution",
                ))
                .build(),
        )
    });
    let err = fallback(&[&rule]).status(EXECUTION_ID).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(err.operation, "GetAutomationExecution");
    assert!(
        err.message.contains("AutomationExecutionNotFoundException"),
        "{err}"
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn status_retries_throttling() {
    let rule = mock!(Client::get_automation_execution)
        .sequence()
        .http_response(|| http_error(400, "ThrottlingException", "Rate exceeded"))
        .times(2)
        .output(|| {
            GetAutomationExecutionOutput::builder()
                .automation_execution(
                    AutomationExecution::builder()
                        .automation_execution_status(AutomationExecutionStatus::Success)
                        .build(),
                )
                .build()
        })
        .build();
    let status = fallback(&[&rule]).status(EXECUTION_ID).await.unwrap();
    assert_eq!(status, AutomationStatus::Succeeded);
    assert_eq!(rule.num_calls(), 3);
}
