//! Exemptions: the always-protected identities, owner tags and configured globs and accounts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::facts::{fmt_time, Timestamp};
use super::policy::Exemptions;
use super::subject::{Principal, PrincipalKind};

pub const TAG_EXEMPT: &str = "dormant:exempt";
pub const TAG_EXEMPT_UNTIL: &str = "dormant:exempt-until";
pub const TAG_EXEMPT_REASON: &str = "dormant:exempt-reason";

/// Why an identity is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Exemption {
    /// Never changed in any mode, whatever the configuration says.
    Protected {
        why: String,
    },
    Tag {
        reason: Option<String>,
        until: Option<Timestamp>,
    },
    Glob {
        pattern: String,
    },
    Account {
        account: String,
    },
}

impl Exemption {
    pub fn describe(&self) -> String {
        match self {
            Exemption::Protected { why } => format!("protected: {why}"),
            Exemption::Tag { reason, until } => {
                let mut s = format!("exempt by tag {TAG_EXEMPT}");
                if let Some(u) = until {
                    s.push_str(&format!(" until {}", fmt_time(*u)));
                }
                if let Some(r) = reason {
                    s.push_str(&format!(" ({r})"));
                }
                s
            }
            Exemption::Glob { pattern } => format!("exempt by configured glob '{pattern}'"),
            Exemption::Account { account } => format!("exempt: account {account} is excluded"),
        }
    }
}

/// The outcome of checking exemptions: either one applies, or none does, possibly with a note
/// explaining why a tag that is present does not count (lapsed, malformed, too far out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Exempt(Exemption),
    NotExempt { note: Option<String> },
}

/// The identities AWS or dormant itself depend on. Not configurable.
pub fn protection(principal: &Principal, policy: &Exemptions) -> Option<String> {
    let is_controller = policy
        .controller
        .iter()
        .any(|(kind, name)| *kind == principal.kind && *name == principal.name);
    if is_controller {
        return Some("dormant's own identity".to_string());
    }
    if principal.kind != PrincipalKind::Role {
        return None;
    }
    if principal.path.starts_with("/aws-service-role/") {
        Some("service-linked role".to_string())
    } else if principal.path.starts_with("/aws-reserved/")
        || principal.name.starts_with("AWSReservedSSO_")
    {
        Some("IAM Identity Center (SSO) role".to_string())
    } else if principal.name == "OrganizationAccountAccessRole" {
        Some("AWS Organizations access role".to_string())
    } else {
        None
    }
}

/// Checks, in order: protection, account, glob, owner tag.
pub fn evaluate(
    principal: &Principal,
    tags: &BTreeMap<String, String>,
    policy: &Exemptions,
    now: Timestamp,
) -> Verdict {
    if let Some(why) = protection(principal, policy) {
        return Verdict::Exempt(Exemption::Protected { why });
    }
    if policy.accounts.contains(&principal.account) {
        return Verdict::Exempt(Exemption::Account {
            account: principal.account.clone(),
        });
    }
    if let Some(pattern) = policy.matching_glob(&principal.path_and_name()) {
        return Verdict::Exempt(Exemption::Glob {
            pattern: pattern.to_string(),
        });
    }
    tag_verdict(tags, policy, now)
}

fn tag_verdict(tags: &BTreeMap<String, String>, policy: &Exemptions, now: Timestamp) -> Verdict {
    let Some(value) = tags.get(TAG_EXEMPT) else {
        return Verdict::NotExempt { note: None };
    };
    if value.trim().eq_ignore_ascii_case("false") {
        return Verdict::NotExempt {
            note: Some(format!("{TAG_EXEMPT} is 'false'")),
        };
    }
    let not_exempt = |note: String| Verdict::NotExempt { note: Some(note) };
    let until = match tags.get(TAG_EXEMPT_UNTIL) {
        None if policy.require_until => {
            return not_exempt(format!(
                "{TAG_EXEMPT} is ignored: the configuration requires {TAG_EXEMPT_UNTIL}"
            ))
        }
        None => None,
        Some(raw) => match parse_until(raw) {
            Some(t) => Some(t),
            None => {
                return not_exempt(format!(
                    "{TAG_EXEMPT} is ignored: {TAG_EXEMPT_UNTIL} '{raw}' is not a date (use YYYY-MM-DD)"
                ))
            }
        },
    };
    if let Some(until) = until {
        if until <= now {
            return not_exempt(format!("exemption lapsed at {}", fmt_time(until)));
        }
        if until - now > policy.max_duration {
            return not_exempt(format!(
                "{TAG_EXEMPT} is ignored: {TAG_EXEMPT_UNTIL} is more than {} days away",
                policy.max_duration.num_days()
            ));
        }
    }
    let reason = tags
        .get(TAG_EXEMPT_REASON)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    Verdict::Exempt(Exemption::Tag { reason, until })
}

/// `YYYY-MM-DD` (the exemption holds through that whole UTC day) or an RFC 3339 instant.
pub fn parse_until(raw: &str) -> Option<Timestamp> {
    let raw = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let next_day = date.succ_opt()?;
        return Some(next_day.and_hms_opt(0, 0, 0)?.and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
