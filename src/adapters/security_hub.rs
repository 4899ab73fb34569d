//! [`SecurityHub`] over the AWS SDK (docs/design.md, 'Security Hub'): `BatchImportFindings` of
//! the findings the core built, `BatchUpdateFindings` of workflow statuses. Serialises and calls;
//! the content is `crate::domain::security_hub`'s.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_securityhub::types::{
    AwsIamAccessKeyDetails, AwsSecurityFinding, AwsSecurityFindingIdentifier,
    FindingProviderFields, FindingProviderSeverity, NoteUpdate, Recommendation, RecordState,
    Remediation, Resource, ResourceDetails, Severity, SeverityLabel, Workflow, WorkflowStatus,
    WorkflowUpdate as SdkWorkflowUpdate,
};
use aws_sdk_securityhub::Client;
use tracing::debug;

use super::retry::RetryPolicy;
use super::PortResult;
use crate::domain::security_hub::{
    self as hub, AsffFinding, AsffResource, AsffSeverity, HubFailure, WorkflowUpdate,
    FINDINGS_PER_CALL,
};
use crate::ports::SecurityHub;

/// Who the notes of `BatchUpdateFindings` name.
pub const UPDATED_BY: &str = "dormant";

pub struct AwsSecurityHub {
    client: Client,
    region: String,
    retry: RetryPolicy,
}

impl AwsSecurityHub {
    /// `client` must be configured for `region` (the region findings are imported in).
    pub fn new(client: Client, region: impl Into<String>, retry: RetryPolicy) -> Self {
        AwsSecurityHub {
            client,
            region: region.into(),
            retry,
        }
    }

    /// The same credentials in another region: a nominating finding lives in its own region.
    fn client_in(&self, region: &str) -> Client {
        if region == self.region {
            return self.client.clone();
        }
        Client::from_conf(
            self.client
                .config()
                .to_builder()
                .region(aws_sdk_securityhub::config::Region::new(region.to_string()))
                .build(),
        )
    }

    async fn update_in(
        &self,
        client: &Client,
        status: hub::WorkflowStatus,
        note: &str,
        refs: &[&WorkflowUpdate],
    ) -> PortResult<Vec<HubFailure>> {
        let ids: Vec<AwsSecurityFindingIdentifier> = refs
            .iter()
            .map(|u| {
                AwsSecurityFindingIdentifier::builder()
                    .id(&u.finding.id)
                    .product_arn(&u.finding.product_arn)
                    .build()
            })
            .collect();
        let out = self
            .retry
            .call("BatchUpdateFindings", || {
                client
                    .batch_update_findings()
                    .set_finding_identifiers(Some(ids.clone()))
                    .workflow(
                        SdkWorkflowUpdate::builder()
                            .status(workflow_status(status))
                            .build(),
                    )
                    .note(
                        NoteUpdate::builder()
                            .text(note)
                            .updated_by(UPDATED_BY)
                            .build(),
                    )
                    .send()
            })
            .await?;
        Ok(out
            .unprocessed_findings()
            .iter()
            .map(|u| HubFailure {
                finding_id: u
                    .finding_identifier()
                    .and_then(|f| f.id())
                    .unwrap_or_default()
                    .to_string(),
                error: format!(
                    "{}: {}",
                    u.error_code().unwrap_or("Unprocessed"),
                    u.error_message().unwrap_or("not updated")
                ),
            })
            .collect())
    }
}

#[async_trait]
impl SecurityHub for AwsSecurityHub {
    fn region(&self) -> &str {
        &self.region
    }

    async fn import(&self, findings: &[AsffFinding]) -> PortResult<Vec<HubFailure>> {
        let mut failed = Vec::new();
        for batch in findings.chunks(FINDINGS_PER_CALL) {
            let sdk: Vec<AwsSecurityFinding> = batch.iter().map(to_sdk).collect();
            let out = self
                .retry
                .call("BatchImportFindings", || {
                    self.client
                        .batch_import_findings()
                        .set_findings(Some(sdk.clone()))
                        .send()
                })
                .await?;
            failed.extend(out.failed_findings().iter().map(|f| HubFailure {
                finding_id: f.id().unwrap_or_default().to_string(),
                error: format!(
                    "{}: {}",
                    f.error_code().unwrap_or("Failed"),
                    f.error_message().unwrap_or("not imported")
                ),
            }));
            debug!(
                imported = out.success_count().unwrap_or_default(),
                failed = out.failed_count().unwrap_or_default(),
                "BatchImportFindings"
            );
        }
        Ok(failed)
    }

    async fn update_workflow(&self, updates: &[WorkflowUpdate]) -> PortResult<Vec<HubFailure>> {
        // One call sets one status and one note: group the updates that share them, per region.
        let mut groups: BTreeMap<(&str, hub::WorkflowStatus, &str), Vec<&WorkflowUpdate>> =
            BTreeMap::new();
        for u in updates {
            let region = u.finding.region().unwrap_or(&self.region);
            groups
                .entry((region, u.status, u.note.as_str()))
                .or_default()
                .push(u);
        }
        let mut failed = Vec::new();
        for ((region, status, note), group) in groups {
            let client = self.client_in(region);
            for chunk in group.chunks(FINDINGS_PER_CALL) {
                // A refused request fails only its findings: the other groups still go out.
                match self.update_in(&client, status, note, chunk).await {
                    Ok(f) => failed.extend(f),
                    Err(e) => failed.extend(chunk.iter().map(|u| HubFailure {
                        finding_id: u.finding.id.clone(),
                        error: e.to_string(),
                    })),
                }
            }
        }
        Ok(failed)
    }
}

fn workflow_status(s: hub::WorkflowStatus) -> WorkflowStatus {
    match s {
        hub::WorkflowStatus::New => WorkflowStatus::New,
        hub::WorkflowStatus::Notified => WorkflowStatus::Notified,
        hub::WorkflowStatus::Resolved => WorkflowStatus::Resolved,
    }
}

fn severity_label(s: hub::SeverityLabel) -> SeverityLabel {
    match s {
        hub::SeverityLabel::Informational => SeverityLabel::Informational,
        hub::SeverityLabel::Low => SeverityLabel::Low,
        hub::SeverityLabel::Medium => SeverityLabel::Medium,
        hub::SeverityLabel::High => SeverityLabel::High,
    }
}

fn severity(s: &AsffSeverity) -> Severity {
    Severity::builder()
        .label(severity_label(s.label))
        .original(&s.original)
        .build()
}

fn resource(r: &AsffResource) -> Resource {
    let mut b = Resource::builder()
        .r#type(&r.kind)
        .id(&r.id)
        .partition(r.partition.as_str().into());
    if let Some(d) = &r.details {
        b = b.details(
            ResourceDetails::builder()
                .aws_iam_access_key(
                    AwsIamAccessKeyDetails::builder()
                        .access_key_id(&d.access_key_id)
                        .principal_name(&d.principal_name)
                        .principal_type(&d.principal_type)
                        .account_id(&d.account_id)
                        .build(),
                )
                .build(),
        );
    }
    b.build()
}

fn to_sdk(f: &AsffFinding) -> AwsSecurityFinding {
    AwsSecurityFinding::builder()
        .schema_version(&f.schema_version)
        .id(&f.id)
        .product_arn(&f.product_arn)
        .product_name(&f.product_name)
        .company_name(&f.company_name)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.aws_account_id)
        .region(&f.region)
        .set_types(Some(f.types.clone()))
        .first_observed_at(&f.first_observed_at)
        .last_observed_at(&f.last_observed_at)
        .created_at(&f.created_at)
        .updated_at(&f.updated_at)
        .severity(severity(&f.severity))
        .title(&f.title)
        .description(&f.description)
        .remediation(
            Remediation::builder()
                .recommendation(
                    Recommendation::builder()
                        .text(&f.remediation.recommendation.text)
                        .build(),
                )
                .build(),
        )
        .set_product_fields(Some(f.product_fields.clone().into_iter().collect()))
        .set_resources(Some(f.resources.iter().map(resource).collect()))
        .workflow(
            Workflow::builder()
                .status(workflow_status(f.workflow.status))
                .build(),
        )
        .record_state(match f.record_state {
            hub::RecordState::Active => RecordState::Active,
            hub::RecordState::Archived => RecordState::Archived,
        })
        .finding_provider_fields(
            FindingProviderFields::builder()
                .severity(
                    FindingProviderSeverity::builder()
                        .label(severity_label(f.finding_provider_fields.severity.label))
                        .original(&f.finding_provider_fields.severity.original)
                        .build(),
                )
                .set_types(Some(f.finding_provider_fields.types.clone()))
                .build(),
        )
        .build()
}
