//! The Security Hub adapter's `BatchUpdateFindings` against aws-smithy-mocks: moto does not
//! implement it (its `BatchImportFindings`/`GetFindings` are used in the parent suite).

use super::*;
use aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsOutput;
use aws_sdk_securityhub::types::{
    AwsSecurityFindingIdentifier, BatchUpdateFindingsUnprocessedFinding,
};
use aws_sdk_securityhub::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};

fn update(id: &str, status: WorkflowStatus, note: &str) -> WorkflowUpdate {
    WorkflowUpdate {
        finding: HubFindingRef {
            id: id.into(),
            product_arn: format!("arn:aws:securityhub:{REGION}::product/aws/securityhub"),
        },
        status,
        note: note.into(),
    }
}

#[tokio::test]
async fn updates_sharing_a_status_and_note_go_in_one_call_with_the_note_signed_dormant() {
    let resolved = mock!(Client::batch_update_findings)
        .match_requests(|r| {
            r.workflow().and_then(|w| w.status()) == Some(&SdkWorkflowStatus::Resolved)
        })
        .then_output(|| {
            BatchUpdateFindingsOutput::builder()
                .processed_findings(
                    AwsSecurityFindingIdentifier::builder()
                        .id("a")
                        .product_arn("p")
                        .build(),
                )
                .unprocessed_findings(
                    BatchUpdateFindingsUnprocessedFinding::builder()
                        .finding_identifier(
                            AwsSecurityFindingIdentifier::builder()
                                .id("b")
                                .product_arn("p")
                                .build(),
                        )
                        .error_code("FindingNotFound")
                        .error_message("no such finding")
                        .build(),
                )
                .build()
        });
    let notified = mock!(Client::batch_update_findings)
        .match_requests(|r| {
            r.workflow().and_then(|w| w.status()) == Some(&SdkWorkflowStatus::Notified)
        })
        .then_output(|| BatchUpdateFindingsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_securityhub,
        RuleMode::MatchAny,
        [&resolved, &notified]
    );
    let adapter = AwsSecurityHub::new(client, REGION, RetryPolicy::fast());

    let failed = adapter
        .update_workflow(&[
            update("a", WorkflowStatus::Resolved, "dormant: role/x deleted"),
            update("c", WorkflowStatus::Notified, "dormant: role/y noticed"),
            update("b", WorkflowStatus::Resolved, "dormant: role/x deleted"),
        ])
        .await
        .unwrap();
    assert_eq!(resolved.num_calls(), 1, "a and b share status and note");
    assert_eq!(notified.num_calls(), 1);
    assert_eq!(
        failed,
        vec![HubFailure {
            finding_id: "b".into(),
            error: "FindingNotFound: no such finding".into()
        }]
    );
}

#[tokio::test]
async fn the_request_names_each_finding_with_its_product_and_carries_the_note() {
    let rule = mock!(Client::batch_update_findings)
        .match_requests(|r| {
            let ids: Vec<_> = r
                .finding_identifiers()
                .iter()
                .map(|f| (f.id().unwrap_or(""), f.product_arn().unwrap_or("")))
                .collect();
            let note = r.note();
            ids == vec![(
                "arn:aws:securityhub:us-east-1:111122223333:subscription/x/finding/1",
                "arn:aws:securityhub:us-east-1::product/aws/securityhub",
            )] && note.and_then(|n| n.text()) == Some("dormant: role/x noticed")
                && note.and_then(|n| n.updated_by()) == Some(UPDATED_BY)
                && r.workflow().and_then(|w| w.status()) == Some(&SdkWorkflowStatus::Notified)
        })
        .then_output(|| BatchUpdateFindingsOutput::builder().build());
    let client = mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, [&rule]);
    let adapter = AwsSecurityHub::new(client, REGION, RetryPolicy::fast());
    let failed = adapter
        .update_workflow(&[update(
            "arn:aws:securityhub:us-east-1:111122223333:subscription/x/finding/1",
            WorkflowStatus::Notified,
            "dormant: role/x noticed",
        )])
        .await
        .unwrap();
    assert!(failed.is_empty());
    assert_eq!(rule.num_calls(), 1);
}
