//! Which accounts a run covers: `accounts` from the configuration, merged with the ACTIVE accounts
//! AWS Organizations lists when `[organization] enabled = true`.
//!
//! Merging rules (documented in README "Several accounts"):
//! - an account in both is swept once, with the role its `accounts` entry names;
//! - discovered accounts that are not ACTIVE (SUSPENDED, PENDING_CLOSURE, CLOSED, ...) or are in
//!   `organization.exclude` are skipped;
//! - the controller's own account is skipped unless `organization.include_own_account`, and is
//!   then swept with the controller's own credentials;
//! - with neither `accounts` nor an organization, the run covers the controller's own account.

use tracing::info;

use crate::config::{Account, Config, Organization};
use crate::error::Result;
use crate::ports::{Directory, OrgAccount};

/// Where the run's accounts come from, and whether an account named from outside (a queued
/// sweep request) is one dormant manages.
#[derive(Debug, Clone)]
pub struct Members {
    pub explicit: Vec<Account>,
    pub organization: Option<Organization>,
    /// The controller's own account.
    pub own: String,
    /// `aws`, `aws-cn`, `aws-us-gov`: for the role ARNs of discovered accounts.
    pub partition: String,
}

impl Members {
    pub fn new(config: &Config, own: &str, partition: &str) -> Self {
        Members {
            explicit: config.accounts.clone(),
            organization: config.organization.clone(),
            own: own.to_string(),
            partition: partition.to_string(),
        }
    }

    /// Every account of the run (Organizations is asked only when enabled).
    pub async fn list<D: Directory + ?Sized>(&self, directory: Option<&D>) -> Result<Vec<Account>> {
        let listed = match (&self.organization, directory) {
            (Some(_), Some(d)) => Some(d.accounts().await?),
            _ => None,
        };
        Ok(self.select(listed.as_deref()))
    }

    /// [`Members::list`] given what Organizations listed (`None`: not asked).
    pub fn select(&self, listed: Option<&[OrgAccount]>) -> Vec<Account> {
        let mut out = self.explicit.clone();
        let (Some(org), Some(listed)) = (&self.organization, listed) else {
            if out.is_empty() && self.organization.is_none() {
                out.push(self.own_account());
            }
            return out;
        };
        for a in listed {
            let skip = if !a.is_active() {
                Some(format!("state {}", a.state))
            } else if org.exclude.contains(&a.id) {
                Some("organization.exclude".to_string())
            } else if a.id == self.own && !org.include_own_account {
                Some("the controller's own account (organization.include_own_account)".to_string())
            } else {
                None
            };
            if let Some(why) = skip {
                info!(account = %a.id, %why, "account from Organizations skipped");
                continue;
            }
            if out.iter().any(|b| b.id == a.id) {
                continue;
            }
            out.push(self.member(&a.id, org));
        }
        out
    }

    /// The account a queued request names, if dormant manages it without listing the
    /// organization again: listed in `accounts`, or any account not excluded when Organizations
    /// discovery is on (the producer only queues ACTIVE ones; a suspended one fails AssumeRole).
    pub fn resolve(&self, id: &str) -> Option<Account> {
        if let Some(a) = self.explicit.iter().find(|a| a.id == id) {
            return Some(a.clone());
        }
        match &self.organization {
            None if self.explicit.is_empty() && id == self.own => Some(self.own_account()),
            None => None,
            Some(org) if org.exclude.iter().any(|x| x == id) => None,
            Some(org) if id == self.own => org.include_own_account.then(|| self.own_account()),
            Some(org) => Some(self.member(id, org)),
        }
    }

    fn own_account(&self) -> Account {
        Account {
            id: self.own.clone(),
            role_arn: None,
        }
    }

    fn member(&self, id: &str, org: &Organization) -> Account {
        if id == self.own {
            return self.own_account();
        }
        Account {
            id: id.to_string(),
            role_arn: Some(format!(
                "arn:{}:iam::{id}:role/{}",
                self.partition, org.role_name
            )),
        }
    }
}

/// The partition of an ARN (`arn:PARTITION:…`), `aws` if it does not parse.
pub fn partition_of(arn: &str) -> &str {
    match arn.split(':').nth(1) {
        Some(p) if arn.starts_with("arn:") && !p.is_empty() => p,
        _ => "aws",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "999999999999";

    fn members(toml: &str) -> Members {
        Members::new(&Config::from_toml(toml).unwrap(), OWN, "aws")
    }

    fn listed(accounts: &[(&str, &str)]) -> Vec<OrgAccount> {
        accounts
            .iter()
            .map(|(id, state)| OrgAccount {
                id: id.to_string(),
                state: state.to_string(),
            })
            .collect()
    }

    fn ids(accounts: &[Account]) -> Vec<&str> {
        accounts.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn without_accounts_or_organization_the_run_covers_the_own_account() {
        let m = members("");
        assert_eq!(ids(&m.select(None)), [OWN]);
        assert_eq!(m.resolve(OWN).map(|a| a.role_arn), Some(None));
        assert_eq!(m.resolve("111111111111"), None);
    }

    #[test]
    fn only_active_accounts_not_excluded_and_not_the_own_one_are_discovered() {
        let m = members(
            "[organization]\nenabled = true\nrole_name = \"DormantMember\"\nexclude = [\"555555555555\"]",
        );
        let all = listed(&[
            ("111111111111", "ACTIVE"),
            ("222222222222", "SUSPENDED"),
            ("333333333333", "PENDING_CLOSURE"),
            ("444444444444", "CLOSED"),
            ("555555555555", "ACTIVE"),
            (OWN, "ACTIVE"),
            ("666666666666", "ACTIVE"),
        ]);
        let got = m.select(Some(&all));
        assert_eq!(ids(&got), ["111111111111", "666666666666"]);
        assert_eq!(
            got[0].role_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/DormantMember")
        );
        assert_eq!(m.resolve("555555555555"), None);
        assert_eq!(m.resolve(OWN), None);
        assert!(m.resolve("777777777777").is_some());
    }

    #[test]
    fn listed_and_discovered_accounts_merge_and_the_listed_role_wins() {
        let m = members(
            "[[accounts]]\nid = \"111111111111\"\nrole = \"arn:aws:iam::111111111111:role/special\"\n\
             [organization]\nenabled = true\ninclude_own_account = true",
        );
        let got = m.select(Some(&listed(&[
            ("111111111111", "ACTIVE"),
            ("222222222222", "ACTIVE"),
            (OWN, "ACTIVE"),
        ])));
        assert_eq!(ids(&got), ["111111111111", "222222222222", OWN]);
        assert_eq!(
            got[0].role_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/special")
        );
        assert_eq!(
            got[1].role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/dormant-member")
        );
        assert_eq!(got[2].role_arn, None, "own account: own credentials");
    }

    #[test]
    fn the_partition_comes_from_the_caller() {
        assert_eq!(
            partition_of("arn:aws-us-gov:sts::123456789012:assumed-role/r/s"),
            "aws-us-gov"
        );
        assert_eq!(partition_of("garbage"), "aws");
    }
}
