//! [`AccessAdvisor`] over IAM's service-last-accessed report (docs/design.md, 'Decisions and guards'):
//! `GenerateServiceLastAccessedDetails` starts a job for the principal, then
//! `GetServiceLastAccessedDetails` is polled, a bounded number of times, until the job is
//! `COMPLETED` or `FAILED`. The answer is the latest `LastAuthenticated` across services.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_iam::types::{AccessAdvisorUsageGranularityType, JobStatusType};
use aws_sdk_iam::Client;
use tracing::debug;

use super::iam::to_chrono;
use super::retry::RetryPolicy;
use super::{ErrorKind, PortError, PortResult};
use crate::domain::{Principal, Timestamp};
use crate::ports::AccessAdvisor;

const GENERATE: &str = "GenerateServiceLastAccessedDetails";
const GET: &str = "GetServiceLastAccessedDetails";
/// A report with more services than this many pages is malformed, not a reason to loop forever.
const MAX_PAGES: usize = 20;

/// How long to wait for the report. Jobs usually finish within seconds; a Lambda must not spend
/// its whole run on one.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    pub interval: Duration,
    pub max_polls: usize,
}

impl Default for Poll {
    fn default() -> Self {
        Poll {
            interval: Duration::from_secs(2),
            max_polls: 15,
        }
    }
}

pub struct AwsAccessAdvisor {
    client: Client,
    retry: RetryPolicy,
    poll: Poll,
}

impl AwsAccessAdvisor {
    pub fn new(client: Client, retry: RetryPolicy, poll: Poll) -> Self {
        AwsAccessAdvisor {
            client,
            retry,
            poll,
        }
    }

    async fn generate(&self, arn: &str) -> PortResult<String> {
        let c = &self.client;
        let out = self
            .retry
            .call(GENERATE, || {
                c.generate_service_last_accessed_details()
                    .arn(arn)
                    .granularity(AccessAdvisorUsageGranularityType::ServiceLevel)
                    .send()
            })
            .await?;
        out.job_id().map(str::to_string).ok_or_else(|| {
            PortError::new(
                ErrorKind::Permanent,
                GENERATE,
                format!("no job id in the answer for {arn}"),
            )
        })
    }
}

/// One page of the report.
struct Page {
    status: JobStatusType,
    latest: Option<Timestamp>,
    failure: Option<String>,
    next: Option<String>,
}

impl AwsAccessAdvisor {
    async fn page(&self, job_id: &str, marker: Option<String>) -> PortResult<Page> {
        let c = &self.client;
        let out = self
            .retry
            .call(GET, || {
                c.get_service_last_accessed_details()
                    .job_id(job_id)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
        let mut latest = None;
        for s in out.services_last_accessed() {
            if let Some(t) = s.last_authenticated() {
                latest = latest.max(Some(to_chrono(GET, t)?));
            }
        }
        Ok(Page {
            status: out.job_status().clone(),
            latest,
            failure: out
                .error()
                .map(|e| format!("{}: {}", e.code(), e.message())),
            next: out
                .marker()
                .filter(|_| out.is_truncated())
                .map(str::to_string),
        })
    }
}

#[async_trait]
impl AccessAdvisor for AwsAccessAdvisor {
    async fn last_authenticated(&self, principal: &Principal) -> PortResult<Option<Timestamp>> {
        let arn = principal.arn();
        let job_id = self.generate(&arn).await?;
        let mut first = None;
        for n in 0..self.poll.max_polls.max(1) {
            if n > 0 {
                tokio::time::sleep(self.poll.interval).await;
            }
            let page = self.page(&job_id, None).await?;
            match page.status {
                JobStatusType::InProgress => continue,
                JobStatusType::Completed => {
                    first = Some(page);
                    break;
                }
                JobStatusType::Failed => {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        GET,
                        format!(
                            "the report for {arn} failed: {}",
                            page.failure.as_deref().unwrap_or("no reason given")
                        ),
                    ))
                }
                other => {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        GET,
                        format!("job {job_id}: unknown status {}", other.as_str()),
                    ))
                }
            }
        }
        let Some(mut page) = first else {
            // Worth asking again on a later run, so transient.
            return Err(PortError::new(
                ErrorKind::Transient,
                GET,
                format!(
                    "the report for {arn} was still in progress after {} polls",
                    self.poll.max_polls.max(1)
                ),
            ));
        };
        let mut latest = page.latest;
        for _ in 1..MAX_PAGES {
            let Some(marker) = page.next.take() else {
                break;
            };
            page = self.page(&job_id, Some(marker)).await?;
            latest = latest.max(page.latest);
        }
        if page.next.is_some() {
            // A later page could hold a later date: an incomplete answer is no answer.
            return Err(PortError::new(
                ErrorKind::Permanent,
                GET,
                format!("the report for {arn} has more than {MAX_PAGES} pages"),
            ));
        }
        debug!(%arn, %job_id, ?latest, "access advisor report");
        Ok(latest)
    }
}
