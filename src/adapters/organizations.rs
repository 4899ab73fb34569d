//! AWS Organizations `ListAccounts`: the member accounts dormant discovers when
//! `[organization] enabled = true`.

use async_trait::async_trait;
use aws_sdk_organizations::operation::list_accounts::ListAccountsOutput;
use aws_sdk_organizations::Client;

use super::paging::all_pages;
use super::retry::RetryPolicy;
use super::PortResult;
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
        const OP: &str = "ListAccounts";
        let c = &self.client;
        let fetch = |token: Option<String>| {
            self.retry.call(OP, move || {
                c.list_accounts().set_next_token(token.clone()).send()
            })
        };
        let split = |page: ListAccountsOutput| {
            let accounts = page
                .accounts()
                .iter()
                .filter_map(|a| {
                    let id = a.id()?;
                    // `State` replaces `Status` (which never says CLOSED); prefer it when present.
                    let state = match (a.state(), a.status()) {
                        (Some(s), _) => s.as_str(),
                        (None, Some(s)) => s.as_str(),
                        (None, None) => "UNKNOWN",
                    };
                    Some(OrgAccount {
                        id: id.to_string(),
                        state: state.to_string(),
                    })
                })
                .collect();
            let next = page.next_token().filter(|t| !t.is_empty());
            (accounts, next.map(str::to_string))
        };
        all_pages(OP, "token", fetch, split).await
    }
}
