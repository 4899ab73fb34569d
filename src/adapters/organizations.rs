//! AWS Organizations `ListAccounts`: the member accounts dormant discovers when
//! `[organization] enabled = true`.

use async_trait::async_trait;
use aws_sdk_organizations::Client;

use super::retry::{classify, RetryPolicy};
use super::{ErrorKind, PortError, PortResult};
use crate::ports::{Directory, OrgAccount};

pub struct AwsOrganizations {
    client: Client,
    retry: RetryPolicy,
}

impl AwsOrganizations {
    pub fn new(client: Client, retry: RetryPolicy) -> Self {
        AwsOrganizations { client, retry }
    }
}

#[async_trait]
impl Directory for AwsOrganizations {
    async fn accounts(&self) -> PortResult<Vec<OrgAccount>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .retry
                .run(|| async {
                    self.client
                        .list_accounts()
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify("ListAccounts", e))
                })
                .await?;
            for a in page.accounts() {
                let Some(id) = a.id() else { continue };
                // `State` replaces `Status` (which never says CLOSED); prefer it when present.
                let state = match (a.state(), a.status()) {
                    (Some(s), _) => s.as_str(),
                    (None, Some(s)) => s.as_str(),
                    (None, None) => "UNKNOWN",
                };
                out.push(OrgAccount {
                    id: id.to_string(),
                    state: state.to_string(),
                });
            }
            match page.next_token() {
                // A server repeating a token would otherwise loop forever.
                Some(t) if token.as_deref() == Some(t) => {
                    return Err(PortError::new(
                        ErrorKind::Permanent,
                        "ListAccounts",
                        "the same pagination token twice",
                    ))
                }
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }
}
