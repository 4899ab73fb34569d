//! The Access Analyzer (`GetFindingV2`) and Access Advisor (`GenerateServiceLastAccessedDetails` /
//! `GetServiceLastAccessedDetails`) adapters against mocked answers (aws-smithy-mocks): moto
//! implements neither API, so these tests pin the requests we send and feed back
//! the answers AWS documents, including throttling and error responses in each protocol's shape.

use std::time::Duration;

use aws_sdk_accessanalyzer::operation::get_finding_v2::GetFindingV2Output;
use aws_sdk_accessanalyzer::types::{
    FindingDetails as AaDetails, FindingStatus, FindingType, ResourceType, UnusedIamRoleDetails,
    UnusedIamUserAccessKeyDetails, UnusedIamUserPasswordDetails,
};
use aws_sdk_iam::operation::generate_service_last_accessed_details::GenerateServiceLastAccessedDetailsOutput;
use aws_sdk_iam::operation::get_service_last_accessed_details::GetServiceLastAccessedDetailsOutput;
use aws_sdk_iam::types::{
    AccessAdvisorUsageGranularityType, ErrorDetails, JobStatusType, ServiceLastAccessed,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::DateTime as SdkTime;
use chrono::{TimeZone, Utc};
use dormant::adapters::access_advisor::{AwsAccessAdvisor, Poll};
use dormant::adapters::access_analyzer::AccessAnalyzer;
use dormant::adapters::retry::RetryPolicy;
use dormant::domain::{Principal, Timestamp};
use dormant::ports::{AccessAdvisor, ErrorKind, FindingDetails};

const ANALYZER: &str = "arn:aws:access-analyzer:us-west-2:123456789012:analyzer/UnusedAccess-org";
const FINDING: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const USER_ARN: &str = "arn:aws:iam::111122223333:user/ci-deployer";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/ops/deploy";
const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const JOB: &str = "examplef-1305-c245-eba4-71fe298bcda7";

fn at(secs: i64) -> Timestamp {
    Utc.timestamp_opt(secs, 0).unwrap()
}

// 2025-11-14T22:13:20Z and later.
const T1: i64 = 1_763_158_400;
const T2: i64 = T1 + 86_400 * 20;
const T3: i64 = T1 + 86_400 * 40;

// ---- Access Analyzer: GetFindingV2 (restJson1) ----------------------------------------------------

fn analyzer(rules: &[&Rule]) -> AccessAnalyzer {
    let client = mock_client!(aws_sdk_accessanalyzer, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_accessanalyzer::config::retry::RetryConfig::disabled()));
    AccessAnalyzer::new(client, RetryPolicy::fast())
}

/// A `GetFindingV2` answer for `resource` with `details`.
fn finding(resource: &str, kind: FindingType, details: Vec<AaDetails>) -> GetFindingV2Output {
    GetFindingV2Output::builder()
        .id(FINDING)
        .analyzed_at(SdkTime::from_secs(T3))
        .created_at(SdkTime::from_secs(T3))
        .updated_at(SdkTime::from_secs(T3))
        .resource(resource)
        .resource_type(if kind == FindingType::UnusedIamRole {
            ResourceType::AwsIamRole
        } else {
            ResourceType::AwsIamUser
        })
        .resource_owner_account("111122223333")
        .status(FindingStatus::Active)
        .finding_type(kind)
        .set_finding_details(Some(details))
        .build()
        .unwrap()
}

fn key_details(last: Option<i64>) -> AaDetails {
    AaDetails::UnusedIamUserAccessKeyDetails(
        UnusedIamUserAccessKeyDetails::builder()
            .access_key_id(KEY)
            .set_last_accessed(last.map(SdkTime::from_secs))
            .build()
            .unwrap(),
    )
}

/// A restJson1 error as Access Analyzer sends it.
fn json_error(status: u16, code: &str, body_extra: &str) -> HttpResponse {
    let mut r = HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"message":"{code} happened"{body_extra}}}"#)),
    );
    r.headers_mut().insert("x-amzn-errortype", code.to_string());
    r.headers_mut()
        .insert("content-type", "application/json".to_string());
    r
}

fn the_finding_is_asked_for(
) -> impl Fn(&aws_sdk_accessanalyzer::operation::get_finding_v2::GetFindingV2Input) -> bool {
    |r| r.analyzer_arn() == Some(ANALYZER) && r.id() == Some(FINDING)
}

#[tokio::test]
async fn a_role_finding_gives_its_last_access() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2)
        .match_requests(the_finding_is_asked_for())
        .then_output(|| {
            finding(
                ROLE_ARN,
                FindingType::UnusedIamRole,
                vec![AaDetails::UnusedIamRoleDetails(
                    UnusedIamRoleDetails::builder()
                        .last_accessed(SdkTime::from_secs(T1))
                        .build(),
                )],
            )
        });
    let d = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap();
    assert_eq!(d.resource.as_deref(), Some(ROLE_ARN));
    assert_eq!(d.last_accessed, Some(at(T1)));
    assert_eq!(d.access_key_id, None);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_key_finding_gives_the_key_id_and_its_last_access() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2)
        .match_requests(the_finding_is_asked_for())
        .then_output(|| {
            finding(
                USER_ARN,
                FindingType::UnusedIamUserAccessKey,
                vec![key_details(Some(T2))],
            )
        });
    let d = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap();
    assert_eq!(d.access_key_id.as_deref(), Some(KEY));
    assert_eq!(d.last_accessed, Some(at(T2)));
    assert_eq!(d.resource.as_deref(), Some(USER_ARN));
}

#[tokio::test]
async fn a_password_finding_gives_its_last_access() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2).then_output(|| {
        finding(
            USER_ARN,
            FindingType::UnusedIamUserPassword,
            vec![AaDetails::UnusedIamUserPasswordDetails(
                UnusedIamUserPasswordDetails::builder()
                    .last_accessed(SdkTime::from_secs(T3))
                    .build(),
            )],
        )
    });
    let d = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap();
    assert_eq!(d.last_accessed, Some(at(T3)));
    assert_eq!(d.access_key_id, None);
}

#[tokio::test]
async fn a_finding_without_last_access_means_never_used() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2).then_output(|| {
        finding(
            USER_ARN,
            FindingType::UnusedIamUserAccessKey,
            vec![key_details(None)],
        )
    });
    let d = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap();
    assert_eq!(d.access_key_id.as_deref(), Some(KEY));
    assert_eq!(d.last_accessed, None);
}

#[tokio::test]
async fn get_finding_throttling_is_retried_until_it_succeeds() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2)
        .sequence()
        .http_response(|| json_error(429, "ThrottlingException", ""))
        .times(2)
        .output(|| {
            finding(
                USER_ARN,
                FindingType::UnusedIamUserAccessKey,
                vec![key_details(Some(T1))],
            )
        })
        .build();
    let d = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap();
    assert_eq!(d.access_key_id.as_deref(), Some(KEY));
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn get_finding_access_denied_is_classified_and_not_retried() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2)
        .then_http_response(|| json_error(403, "AccessDeniedException", ""));
    let err = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(err.operation, "GetFindingV2");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_finding_that_is_gone_is_not_found() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2).then_http_response(|| {
        json_error(
            404,
            "ResourceNotFoundException",
            &format!(r#","resourceId":"{FINDING}","resourceType":"Finding""#),
        )
    });
    let err = analyzer(&[&rule])
        .unused_access(ANALYZER, FINDING)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_malformed_analyzer_arn_is_refused_without_a_call() {
    let rule = mock!(aws_sdk_accessanalyzer::Client::get_finding_v2)
        .then_output(|| finding(USER_ARN, FindingType::UnusedIamUserAccessKey, vec![]));
    let err = analyzer(&[&rule])
        .unused_access("not-an-arn", FINDING)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert_eq!(rule.num_calls(), 0);
}

// ---- Access Advisor: IAM (awsQuery) --------------------------------------------------------------

fn advisor(rules: &[&Rule], max_polls: usize) -> AwsAccessAdvisor {
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled()));
    AwsAccessAdvisor::new(
        client,
        RetryPolicy::fast(),
        Poll {
            interval: Duration::from_millis(1),
            max_polls,
        },
    )
}

fn role() -> Principal {
    Principal::role("111122223333", "/ops/", "deploy")
}

fn generate_rule() -> Rule {
    mock!(aws_sdk_iam::Client::generate_service_last_accessed_details)
        .match_requests(|r| {
            r.arn() == Some(ROLE_ARN)
                && r.granularity() == Some(&AccessAdvisorUsageGranularityType::ServiceLevel)
        })
        .then_output(|| {
            GenerateServiceLastAccessedDetailsOutput::builder()
                .job_id(JOB)
                .build()
        })
}

fn service(name: &str, last: Option<i64>) -> ServiceLastAccessed {
    ServiceLastAccessed::builder()
        .service_name(name)
        .service_namespace(name.to_lowercase())
        .set_last_authenticated(last.map(SdkTime::from_secs))
        .build()
        .unwrap()
}

fn report(
    status: JobStatusType,
    services: Vec<ServiceLastAccessed>,
    marker: Option<&str>,
) -> GetServiceLastAccessedDetailsOutput {
    GetServiceLastAccessedDetailsOutput::builder()
        .job_status(status)
        .job_creation_date(SdkTime::from_secs(T3))
        .job_completion_date(SdkTime::from_secs(T3))
        .set_services_last_accessed(Some(services))
        .is_truncated(marker.is_some())
        .set_marker(marker.map(str::to_string))
        .build()
        .unwrap()
}

/// An IAM (awsQuery) error answer.
fn query_error(status: u16, code: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} happened</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        )),
    )
}

#[tokio::test]
async fn the_report_is_polled_until_completed() {
    let generate = generate_rule();
    let get = mock!(aws_sdk_iam::Client::get_service_last_accessed_details)
        .match_requests(|r| r.job_id() == Some(JOB) && r.marker().is_none())
        .sequence()
        .output(|| report(JobStatusType::InProgress, vec![], None))
        .times(2)
        .output(|| {
            report(
                JobStatusType::Completed,
                vec![service("S3", Some(T2))],
                None,
            )
        })
        .build();
    let a = advisor(&[&generate, &get], 5);
    assert_eq!(a.last_authenticated(&role()).await.unwrap(), Some(at(T2)));
    assert_eq!(generate.num_calls(), 1);
    assert_eq!(get.num_calls(), 3);
}

#[tokio::test]
async fn polling_is_bounded() {
    let generate = generate_rule();
    let get = mock!(aws_sdk_iam::Client::get_service_last_accessed_details)
        .then_output(|| report(JobStatusType::InProgress, vec![], None));
    let a = advisor(&[&generate, &get], 4);
    let err = a.last_authenticated(&role()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.message.contains("still in progress"), "{err}");
    assert_eq!(get.num_calls(), 4);
}

#[tokio::test]
async fn a_failed_job_is_an_error_with_its_reason() {
    let generate = generate_rule();
    let get = mock!(aws_sdk_iam::Client::get_service_last_accessed_details).then_output(|| {
        GetServiceLastAccessedDetailsOutput::builder()
            .job_status(JobStatusType::Failed)
            .job_creation_date(SdkTime::from_secs(T3))
            .job_completion_date(SdkTime::from_secs(T3))
            .set_services_last_accessed(Some(vec![]))
            .error(
                ErrorDetails::builder()
                    .code("InternalError")
                    .message("report could not be generated")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let err = advisor(&[&generate, &get], 5)
        .last_authenticated(&role())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(
        err.message.contains("report could not be generated"),
        "{err}"
    );
    assert_eq!(get.num_calls(), 1);
}

#[tokio::test]
async fn no_service_ever_authenticated_is_none() {
    let generate = generate_rule();
    let get = mock!(aws_sdk_iam::Client::get_service_last_accessed_details).then_output(|| {
        report(
            JobStatusType::Completed,
            vec![service("S3", None), service("EC2", None)],
            None,
        )
    });
    let got = advisor(&[&generate, &get], 5)
        .last_authenticated(&role())
        .await
        .unwrap();
    assert_eq!(got, None);
}

#[tokio::test]
async fn throttling_is_retried_on_both_calls() {
    let generate = mock!(aws_sdk_iam::Client::generate_service_last_accessed_details)
        .sequence()
        .http_response(|| query_error(400, "Throttling"))
        .times(2)
        .output(|| {
            GenerateServiceLastAccessedDetailsOutput::builder()
                .job_id(JOB)
                .build()
        })
        .build();
    let get = mock!(aws_sdk_iam::Client::get_service_last_accessed_details)
        .sequence()
        .http_response(|| query_error(400, "Throttling"))
        .output(|| {
            report(
                JobStatusType::Completed,
                vec![service("S3", Some(T1))],
                None,
            )
        })
        .build();
    let got = advisor(&[&generate, &get], 5)
        .last_authenticated(&role())
        .await
        .unwrap();
    assert_eq!(got, Some(at(T1)));
    assert_eq!(generate.num_calls(), 3);
    assert_eq!(get.num_calls(), 2);
}

#[tokio::test]
async fn throttling_beyond_the_retries_is_a_transient_error() {
    let generate = mock!(aws_sdk_iam::Client::generate_service_last_accessed_details)
        .then_http_response(|| query_error(400, "Throttling"));
    let err = advisor(&[&generate], 5)
        .last_authenticated(&role())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert_eq!(generate.num_calls(), 1 + RetryPolicy::fast().max_times);
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let generate = mock!(aws_sdk_iam::Client::generate_service_last_accessed_details)
        .then_http_response(|| query_error(403, "AccessDenied"));
    let err = advisor(&[&generate], 5)
        .last_authenticated(&role())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    assert_eq!(generate.num_calls(), 1);
}

#[tokio::test]
async fn the_latest_last_authenticated_across_services_and_pages_wins() {
    let generate = generate_rule();
    let first = mock!(aws_sdk_iam::Client::get_service_last_accessed_details)
        .match_requests(|r| r.marker().is_none())
        .then_output(|| {
            report(
                JobStatusType::Completed,
                vec![
                    service("S3", Some(T1)),
                    service("EC2", None),
                    service("Lambda", Some(T2)),
                ],
                Some("page-2"),
            )
        });
    let second = mock!(aws_sdk_iam::Client::get_service_last_accessed_details)
        .match_requests(|r| r.marker() == Some("page-2"))
        .then_output(|| {
            report(
                JobStatusType::Completed,
                vec![service("SQS", Some(T3)), service("SNS", Some(T1))],
                None,
            )
        });
    let got = advisor(&[&generate, &first, &second], 5)
        .last_authenticated(&role())
        .await
        .unwrap();
    assert_eq!(got, Some(at(T3)));
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}
