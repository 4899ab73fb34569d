//! [`FindingDetails`] over IAM Access Analyzer `GetFindingV2`: the access key id and last access
//! that an unused-access finding's EventBridge event leaves out.
//!
//! Analyzers are regional and the event names its analyzer by ARN, so each call goes to the
//! region in that ARN. The call runs with the controller's own credentials: a finding of an
//! analyzer in another account (an organization's delegated administrator) is AccessDenied,
//! which the caller logs and goes on without.

use async_trait::async_trait;
use aws_sdk_accessanalyzer::config::Region;
use aws_sdk_accessanalyzer::types::FindingDetails as Sdk;
use aws_sdk_accessanalyzer::Client;
use tracing::debug;

use super::iam::to_chrono;
use super::retry::RetryPolicy;
use super::{ErrorKind, PortError, PortResult};
use crate::domain::finding::UnusedAccessDetails;
use crate::ports::FindingDetails;

const GET: &str = "GetFindingV2";
/// Unused-access findings have one detail per resource; the bound only stops a runaway token loop.
const MAX_PAGES: usize = 10;

pub struct AccessAnalyzer {
    client: Client,
    retry: RetryPolicy,
}

impl AccessAnalyzer {
    pub fn new(client: Client, retry: RetryPolicy) -> Self {
        AccessAnalyzer { client, retry }
    }
}

/// The region field of an ARN (`arn:aws:access-analyzer:REGION:ACCOUNT:analyzer/NAME`).
fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

#[async_trait]
impl FindingDetails for AccessAnalyzer {
    async fn unused_access(
        &self,
        analyzer_arn: &str,
        finding_id: &str,
    ) -> PortResult<UnusedAccessDetails> {
        let region = region_of(analyzer_arn).ok_or_else(|| {
            PortError::new(
                ErrorKind::Permanent,
                GET,
                format!("{analyzer_arn} is not an analyzer ARN"),
            )
        })?;
        let mut details = UnusedAccessDetails::default();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let c = &self.client;
            let page_token = token.clone();
            let out = self
                .retry
                .call(GET, || {
                    c.get_finding_v2()
                        .analyzer_arn(analyzer_arn)
                        .id(finding_id)
                        .set_next_token(page_token.clone())
                        .customize()
                        .config_override(
                            aws_sdk_accessanalyzer::Config::builder()
                                .region(Region::new(region.to_string())),
                        )
                        .send()
                })
                .await?;
            if details.resource.is_none() {
                details.resource = out.resource().map(str::to_string);
            }
            for d in out.finding_details() {
                let (key, last) = match d {
                    Sdk::UnusedIamRoleDetails(r) => (None, r.last_accessed()),
                    Sdk::UnusedIamUserAccessKeyDetails(k) => {
                        (Some(k.access_key_id()), k.last_accessed())
                    }
                    Sdk::UnusedIamUserPasswordDetails(p) => (None, p.last_accessed()),
                    // Unused permissions and external/internal access are not about identities
                    // going unused; nothing to take from them.
                    _ => (None, None),
                };
                if let (Some(key), None) = (key, &details.access_key_id) {
                    details.access_key_id = Some(key.to_string());
                }
                if let Some(t) = last {
                    let t = to_chrono(GET, t)?;
                    details.last_accessed = details.last_accessed.max(Some(t));
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        debug!(%analyzer_arn, %finding_id, ?details, "finding details");
        Ok(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_analyzer_arn() {
        assert_eq!(
            region_of("arn:aws:access-analyzer:us-west-2:123456789012:analyzer/a"),
            Some("us-west-2")
        );
        assert_eq!(region_of("arn:aws:access-analyzer::123:analyzer/a"), None);
        assert_eq!(region_of("nonsense"), None);
    }
}
