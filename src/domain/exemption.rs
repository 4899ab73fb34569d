//! Exemptions: the always-protected identities, owner tags and configured globs and accounts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::policy::Exemptions;
use super::subject::{Principal, PrincipalKind};
use super::tag::{self, TAG_EXEMPT, TAG_EXEMPT_REASON, TAG_EXEMPT_UNTIL};
use super::time::{fmt_time, Timestamp};

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
        /// When it ends: the tag's date, or the `max_days` cap when the date is not usable.
        until: Option<Timestamp>,
        /// What is wrong with the tags when the exemption holds anyway (a date dormant cannot
        /// read, one too far out, one the configuration requires and is missing). The engine
        /// logs it; it is part of [`Exemption::describe`], so audit entries carry it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warning: Option<String>,
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
            Exemption::Tag {
                reason,
                until,
                warning,
            } => {
                let mut s = format!("exempt by tag {TAG_EXEMPT}");
                if let Some(u) = until {
                    s.push_str(&format!(" until {}", fmt_time(*u)));
                }
                if let Some(r) = reason {
                    s.push_str(&format!(" ({r})"));
                }
                if let Some(w) = warning {
                    s.push_str(&format!("; {w}"));
                }
                s
            }
            Exemption::Glob { pattern } => format!("exempt by configured glob '{pattern}'"),
            Exemption::Account { account } => format!("exempt: account {account} is excluded"),
        }
    }

    /// Something about the exemption tags the owner should fix, if any.
    pub fn warning(&self) -> Option<&str> {
        match self {
            Exemption::Tag { warning, .. } => warning.as_deref(),
            Exemption::Protected { .. } | Exemption::Glob { .. } | Exemption::Account { .. } => {
                None
            }
        }
    }
}

/// An exemption tag without a usable end date (unreadable, beyond `exemptions.max_days`, or
/// missing where `exemptions.require_until` asks for one) and when dormant first saw it. Kept in
/// the record: such an exemption holds for `max_days` from then, not for ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenExemption {
    /// The `dormant:exempt-until` value it was seen with (`None`: there was none). A new value
    /// is a new exemption, as a renewal with a readable date would be.
    pub until_tag: Option<String>,
    pub since: Timestamp,
}

/// The outcome of checking exemptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub exemption: Option<Exemption>,
    /// Why an exemption tag that is present does not count (`false`, lapsed, its cap ended).
    pub note: Option<String>,
    /// For the record to keep: an exemption tag without a usable end date (exempting or lapsed).
    pub open: Option<OpenExemption>,
}

impl Verdict {
    fn exempt(exemption: Exemption) -> Self {
        Verdict {
            exemption: Some(exemption),
            note: None,
            open: None,
        }
    }

    fn not_exempt(note: Option<String>) -> Self {
        Verdict {
            exemption: None,
            note,
            open: None,
        }
    }
}

/// What a protected-role pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Path,
    Name,
}

/// One entry of [`ALWAYS_PROTECTED`]: `*` matches any run of characters, ASCII case is ignored
/// (IAM role names are unique regardless of case, so a differently cased name is the same role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protected {
    pub part: Part,
    pub pattern: &'static str,
    pub why: &'static str,
}

const fn path(pattern: &'static str, why: &'static str) -> Protected {
    Protected {
        part: Part::Path,
        pattern,
        why,
    }
}

const fn name(pattern: &'static str, why: &'static str) -> Protected {
    Protected {
        part: Part::Name,
        pattern,
        why,
    }
}

/// Roles that AWS, the organization's tooling or dormant itself depend on: never changed in any
/// mode, whatever the configuration says. Most are used only when something is deployed or an
/// account is set up, so they look unused for months. (dormant's own identities that the
/// configuration names, and the one it runs as, are in `Exemptions::controller`.)
pub const ALWAYS_PROTECTED: &[Protected] = &[
    // Service-linked roles: owned by an AWS service, which alone may change or delete them.
    path("/aws-service-role/*", "service-linked role"),
    // IAM Identity Center: one role per permission set and account, managed by the service.
    path("/aws-reserved/*", "IAM Identity Center (SSO) role"),
    // The management account's way into a member account Organizations created; often the only
    // way in.
    name(
        "OrganizationAccountAccessRole",
        "AWS Organizations access role",
    ),
    // Control Tower: AWSControlTowerExecution in every enrolled account, and the landing zone's
    // own roles (AWSControlTowerAdmin, ...StackSetRole, ...CloudTrailRole) in the management one.
    name("AWSControlTower*", "AWS Control Tower role"),
    // Control Tower's baseline in enrolled accounts (aws-controltower-AdministratorExecutionRole,
    // -ConfigRecorderRole, -ForwardSnsNotificationRole, ...).
    name("aws-controltower-*", "AWS Control Tower role"),
    // Service-managed StackSets create this execution role in each target account.
    name(
        "stacksets-exec-*",
        "CloudFormation StackSets execution role",
    ),
    // Self-managed StackSets: the execution role in each target account...
    name(
        "AWSCloudFormationStackSetExecutionRole",
        "CloudFormation StackSets execution role",
    ),
    // ...and the administration role in the account that deploys them.
    name(
        "AWSCloudFormationStackSetAdministrationRole",
        "CloudFormation StackSets administration role",
    ),
    // CDK bootstrap: cdk-<qualifier>-{deploy,cfn-exec,file-publishing,image-publishing,lookup}-
    // role-<account>-<region>, used only by `cdk deploy`.
    name("cdk-*-role-*", "CDK bootstrap role"),
    // dormant's own roles under the names cdk/ gives them by default, in every account, even
    // when the controller runs as another identity (renamed ones are named by the configuration).
    name("dormant-controller", "dormant's own role"),
    name("dormant-member", "dormant's own role"),
    name("dormant-automation", "dormant's own role"),
    name("dormant-answers", "dormant's own role"),
];

impl Protected {
    fn matches(&self, principal: &Principal) -> bool {
        let text = match self.part {
            Part::Path => &principal.path,
            Part::Name => &principal.name,
        };
        wildcard(self.pattern, text)
    }
}

/// `*` matches any run of characters (none included); ASCII case is ignored.
fn wildcard(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Why `principal` is never changed by dormant, if it is: one of dormant's own identities, or
/// one of [`ALWAYS_PROTECTED`]. Not configurable.
pub fn protection(principal: &Principal, policy: &Exemptions) -> Option<String> {
    let is_own = policy
        .controller
        .iter()
        .any(|(kind, name)| *kind == principal.kind && name.eq_ignore_ascii_case(&principal.name));
    if is_own {
        return Some("dormant's own identity".to_string());
    }
    if principal.kind != PrincipalKind::Role {
        return None;
    }
    ALWAYS_PROTECTED
        .iter()
        .find(|p| p.matches(principal))
        .map(|p| p.why.to_string())
}

/// Checks, in order: protection, account, glob, owner tag. `seen` is what the record kept of an
/// exemption tag without a usable end date (see [`OpenExemption`]).
pub fn evaluate(
    principal: &Principal,
    tags: &BTreeMap<String, String>,
    policy: &Exemptions,
    seen: Option<&OpenExemption>,
    now: Timestamp,
) -> Verdict {
    if let Some(why) = protection(principal, policy) {
        return Verdict::exempt(Exemption::Protected { why });
    }
    if policy.accounts.contains(&principal.account) {
        return Verdict::exempt(Exemption::Account {
            account: principal.account.clone(),
        });
    }
    if let Some(pattern) = policy.matching_glob(&principal.path_and_name()) {
        return Verdict::exempt(Exemption::Glob {
            pattern: pattern.to_string(),
        });
    }
    tag_verdict(tags, policy, seen, now)
}

/// An owner's tag exempts unless its value is `false` (any case) or its readable date has
/// passed. Fail safe: a tag whose end date dormant cannot use still exempts, with a warning, for
/// `max_days` from when dormant first saw it, so a typo never cuts an identity off and an
/// exemption never lasts for ever.
fn tag_verdict(
    tags: &BTreeMap<String, String>,
    policy: &Exemptions,
    seen: Option<&OpenExemption>,
    now: Timestamp,
) -> Verdict {
    let Some(value) = tag::value(tags, TAG_EXEMPT) else {
        // An owner's own spelling of the key is not the one the SCP guards: not an exemption.
        let note = tag::miscased(tags, TAG_EXEMPT).map(|k| {
            format!(
                "tag '{k}' is not '{TAG_EXEMPT}': exemption tags count only in that exact \
                 spelling, the one the SCP keeps to security admins"
            )
        });
        return Verdict::not_exempt(note);
    };
    if value.trim().eq_ignore_ascii_case("false") {
        return Verdict::not_exempt(Some(format!("{TAG_EXEMPT} is '{}'", value.trim())));
    }
    let reason = tag::value(tags, TAG_EXEMPT_REASON)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let until_tag = tag::value(tags, TAG_EXEMPT_UNTIL).map(str::trim);
    let remembered = seen
        .filter(|s| s.until_tag.as_deref() == until_tag)
        .map(|s| s.since);
    let max = policy.max_duration;
    let days = max.num_days();
    let problem = match until_tag {
        None if !policy.require_until => {
            return Verdict::exempt(Exemption::Tag {
                reason,
                until: None,
                warning: None,
            })
        }
        None => format!("{TAG_EXEMPT_UNTIL} is missing and exemptions.require_until asks for one"),
        Some(raw) => match parse_until(raw) {
            None => format!("{TAG_EXEMPT_UNTIL} '{raw}' is not a date (use YYYY-MM-DD)"),
            Some(until) if until <= now => {
                return Verdict::not_exempt(Some(format!(
                    "exemption lapsed at {}",
                    fmt_time(until)
                )))
            }
            Some(until) if remembered.is_none() && until - now <= max => {
                return Verdict::exempt(Exemption::Tag {
                    reason,
                    until: Some(until),
                    warning: None,
                })
            }
            Some(_) => format!(
                "{TAG_EXEMPT_UNTIL} {raw} was more than {days} days (exemptions.max_days) away when dormant first saw it"
            ),
        },
    };
    let since = remembered.unwrap_or(now);
    let end = since + max;
    let open = Some(OpenExemption {
        until_tag: until_tag.map(str::to_string),
        since,
    });
    if now < end {
        let warning = format!(
            "{problem}: the exemption holds for {days} days from {}, until {}",
            fmt_time(since),
            fmt_time(end)
        );
        Verdict {
            exemption: Some(Exemption::Tag {
                reason,
                until: Some(end),
                warning: Some(warning),
            }),
            note: None,
            open,
        }
    } else {
        let note = format!(
            "{TAG_EXEMPT} no longer counts: {problem}, and the {days} days (exemptions.max_days) from {} ended at {}",
            fmt_time(since),
            fmt_time(end)
        );
        Verdict {
            exemption: None,
            note: Some(note),
            open,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_names_ignoring_case() {
        for (p, t, want) in [
            (
                "cdk-*-role-*",
                "cdk-hnb659fds-deploy-role-1-us-east-1",
                true,
            ),
            ("cdk-*-role-*", "CDK-x-ROLE-y", true),
            ("cdk-*-role-*", "cdk--role-", true),
            ("cdk-*-role-*", "cdk-role-x", false),
            ("cdk-*-role-*", "my-cdk-x-role-y", false),
            ("stacksets-exec-*", "stacksets-exec-", true),
            ("stacksets-exec-*", "stacksets-executor", false),
            (
                "OrganizationAccountAccessRole",
                "organizationaccountaccessrole",
                true,
            ),
            (
                "OrganizationAccountAccessRole",
                "OrganizationAccountAccessRole2",
                false,
            ),
            (
                "/aws-service-role/*",
                "/aws-service-role/x.amazonaws.com/",
                true,
            ),
            ("/aws-service-role/*", "/team/aws-service-role/", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ] {
            assert_eq!(wildcard(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn every_entry_protects_what_its_comment_names() {
        let examples = [
            (
                "/aws-service-role/support.amazonaws.com/",
                "AWSServiceRoleForSupport",
            ),
            ("/aws-reserved/sso.amazonaws.com/", "AWSReservedSSO_Admin_1"),
            ("/", "OrganizationAccountAccessRole"),
            ("/", "AWSControlTowerExecution"),
            ("/", "aws-controltower-ConfigRecorderRole"),
            ("/", "stacksets-exec-4f0e1cd3a5b6c7d8e9f0a1b2c3d4e5f6"),
            ("/", "AWSCloudFormationStackSetExecutionRole"),
            ("/", "AWSCloudFormationStackSetAdministrationRole"),
            (
                "/",
                "cdk-hnb659fds-image-publishing-role-123456789012-us-east-1",
            ),
            ("/", "dormant-controller"),
            ("/", "dormant-member"),
            ("/", "dormant-automation"),
            ("/", "dormant-answers"),
        ];
        let policy = super::super::policy::Policy::default().exemptions;
        for entry in ALWAYS_PROTECTED {
            let hit = examples.iter().any(|(path, name)| {
                let p = Principal::role("111122223333", path, name);
                entry.matches(&p) && protection(&p, &policy).is_some()
            });
            assert!(hit, "no example for {:?}", entry.pattern);
        }
        let user = Principal::user("111122223333", "/", "OrganizationAccountAccessRole");
        assert_eq!(protection(&user, &policy), None, "the table lists roles");
    }
}
