//! [`RawConfig::validate`]: one function per `[section]`, in the order the file documents them, so
//! that the first error names the first field at fault.

use chrono::Duration;

use super::{err, Account, Config, ConfigError, Organization, SecurityHub, Timeouts};
use super::{
    RawAccount, RawBreaker, RawConfig, RawDeleteMode, RawExemptions, RawFallback, RawInactivity,
    RawLadder, RawNotify, RawOrganization, RawSecurityHub, RawTimeouts,
};
use crate::domain::fallback::has_document;
use crate::domain::policy::{BreakerLimits, DeleteMode, Exemptions, Inactivity, Ladder, Policy};
use crate::domain::stage::Step;
use crate::domain::subject::{is_account_id, PrincipalKind};

impl RawConfig {
    pub fn validate(self) -> Result<Config, ConfigError> {
        if !is_table_name(&self.table) {
            return Err(err(
                "table",
                format!(
                    "'{}' is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)",
                    self.table
                ),
            ));
        }
        if self.event_bus.trim().is_empty() {
            return Err(err("event_bus", "must not be empty"));
        }
        let accounts = accounts(&self.accounts)?;
        let concurrency =
            count("max_concurrent_accounts", self.max_concurrent_accounts, 1)? as usize;
        let identity_concurrency = count(
            "max_concurrent_identities",
            self.max_concurrent_identities,
            1,
        )? as usize;
        let organization = organization(&self.organization, &accounts)?;
        let inactivity = inactivity(&self.inactivity)?;
        let ladder = ladder(&self.ladder)?;
        let mut exemptions = exemptions(&self.exemptions)?;
        let breaker = breaker(&self.breaker)?;
        let (ssm_steps, automation_role) = fallback(&self.fallback)?;
        // The roles dormant assumes or passes to SSM are its own: protected by name in every
        // account (the same names are deployed in each, and a name is unique in an account
        // whatever the path), so a member account's copy is never quarantined either.
        let answers_role = self.answers.role_name.trim();
        if !answers_role.is_empty() && !crate::domain::subject::is_iam_name(answers_role) {
            return Err(err(
                "answers.role_name",
                format!("'{answers_role}' is not an IAM role name"),
            ));
        }
        let own_roles = accounts
            .iter()
            .filter_map(|a| a.role_arn.as_deref())
            .chain(automation_role.as_deref())
            .filter_map(|arn| arn.rsplit('/').next())
            .chain(organization.as_ref().map(|o| o.role_name.as_str()))
            .chain((!answers_role.is_empty()).then_some(answers_role));
        for name in own_roles {
            exemptions
                .controller
                .push((PrincipalKind::Role, name.to_string()));
        }
        for (n, r) in self.sources.config_rules.iter().enumerate() {
            if r.trim().is_empty() {
                return Err(err(
                    &format!("sources.config_rules[{n}]"),
                    "must not be empty",
                ));
            }
        }

        Ok(Config {
            table: self.table,
            event_bus: self.event_bus,
            accounts,
            organization,
            max_concurrent_accounts: concurrency,
            max_concurrent_identities: identity_concurrency,
            policy: Policy {
                dry_run: self.dry_run,
                inactivity,
                ladder,
                exemptions,
                breaker,
            },
            ssm_steps,
            automation_role,
            config_rules: self.sources.config_rules,
            timeouts: timeouts(&self.timeouts)?,
            security_hub: security_hub(&self.security_hub)?,
            notify: notify(&self.notify)?,
            answers: super::answers::answers(&self.answers)?,
        })
    }
}

/// `[notify]`: every recipient parses, every account id is one, webhooks are https (or
/// http on 127.0.0.1, for tests), and whoever can be told by email has a sender.
fn notify(raw: &RawNotify) -> Result<Option<super::Notify>, ConfigError> {
    use crate::domain::notify::{Recipient, Routing};
    let recipient = |field: &str, s: &str| s.parse::<Recipient>().map_err(|e| err(field, e));
    let optional = |field: &str, s: &str| {
        let s = s.trim();
        if s.is_empty() {
            Ok(None)
        } else {
            recipient(field, s).map(Some)
        }
    };
    if raw
        .owner_tags
        .iter()
        .any(|k| k.trim().is_empty() || k.len() > 128)
    {
        return Err(err("notify.owner_tags", "tag keys are 1-128 characters"));
    }
    let mut routes = std::collections::BTreeMap::new();
    for (from, to) in &raw.routes {
        let field = format!("notify.routes.{from}");
        if from.trim().is_empty() {
            return Err(err(&field, "a route needs a tag value or account id"));
        }
        routes.insert(from.trim().to_string(), recipient(&field, to)?);
    }
    let mut account_fallback = std::collections::BTreeMap::new();
    for (account, to) in &raw.account_fallback {
        let field = format!("notify.account_fallback.{account}");
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                &field,
                format!("'{account}' is not a 12-digit account id"),
            ));
        }
        account_fallback.insert(account.clone(), recipient(&field, to)?);
    }
    let routing = Routing {
        owner_tags: raw
            .owner_tags
            .iter()
            .map(|k| k.trim().to_string())
            .collect(),
        routes,
        account_fallback,
        fallback: optional("notify.fallback", &raw.fallback)?,
        feed: optional("notify.feed", &raw.feed)?,
    };
    let mut slack_webhooks = std::collections::BTreeMap::new();
    for (channel, url) in &raw.slack_webhooks {
        let field = format!("notify.slack_webhooks.{channel}");
        match recipient(&field, &format!("slack:{channel}"))? {
            Recipient::Slack(c) => {
                check_webhook(&field, url)?;
                slack_webhooks.insert(c, url.clone());
            }
            Recipient::Email(_) | Recipient::Sns(_) => {
                return Err(err(&field, "not a Slack channel"));
            }
        }
    }
    let email_from = raw.email_from.trim();
    if !email_from.is_empty() && !matches!(email_from.parse::<Recipient>(), Ok(Recipient::Email(_)))
    {
        return Err(err(
            "notify.email_from",
            format!("'{email_from}' is not an email address"),
        ));
    }
    if raw.enabled && email_from.is_empty() {
        let emails = routing
            .routes
            .values()
            .chain(routing.account_fallback.values())
            .chain(routing.fallback.iter())
            .chain(routing.feed.iter())
            .any(|r| matches!(r, Recipient::Email(_)));
        if emails {
            return Err(err(
                "notify.email_from",
                "recipients include email addresses: set the verified SES sender",
            ));
        }
    }
    if !(1..=100).contains(&raw.max_attempts) {
        return Err(err(
            "notify.max_attempts",
            format!("{} is not 1 to 100", raw.max_attempts),
        ));
    }
    let secret = raw.slack_webhooks_secret.trim();
    let templates = raw.templates.trim();
    Ok(raw.enabled.then(|| super::Notify {
        routing,
        email_from: (!email_from.is_empty()).then(|| email_from.to_string()),
        slack_webhooks,
        slack_webhooks_secret: (!secret.is_empty()).then(|| secret.to_string()),
        templates: (!templates.is_empty()).then(|| std::path::PathBuf::from(templates)),
        max_attempts: raw.max_attempts,
    }))
}

/// A Slack webhook URL: https, or http to 127.0.0.1 (a test's own server).
pub fn check_webhook(field: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://127.0.0.1:") {
        Ok(())
    } else {
        Err(err(field, "a webhook URL must start with https://"))
    }
}

/// `[security_hub]`: the region, when given, must look like one (`eu-west-1`, `us-gov-west-1`).
fn security_hub(raw: &RawSecurityHub) -> Result<Option<SecurityHub>, ConfigError> {
    let region = raw.region.trim();
    if !region.is_empty() && !is_region(region) {
        return Err(err(
            "security_hub.region",
            format!("'{region}' is not an AWS region (e.g. us-east-1, eu-west-1)"),
        ));
    }
    Ok(raw.enabled.then(|| SecurityHub {
        region: (!region.is_empty()).then(|| region.to_string()),
    }))
}

/// Lower-case words joined by `-`, the last a number: `us-east-1`, `cn-north-1`, `us-gov-west-1`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((last, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// `[[accounts]]`: unique 12-digit ids, each with a role ARN in that very account (or none).
fn accounts(raw: &[RawAccount]) -> Result<Vec<Account>, ConfigError> {
    let mut accounts: Vec<Account> = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        if !is_account_id(&a.id) {
            return Err(err(
                &format!("accounts[{i}].id"),
                format!("'{}' is not a 12-digit account id", a.id),
            ));
        }
        if accounts.iter().any(|b| b.id == a.id) {
            return Err(err(
                &format!("accounts[{i}].id"),
                format!("account {} is listed twice", a.id),
            ));
        }
        let role_arn = match a.role.trim() {
            "" => None,
            r if is_role_arn(r) => {
                // The role must live in the account it is listed for: dormant acts with it
                // as that account (and `exemptions.accounts` is matched by that id).
                let in_account = r.split(':').nth(4).unwrap_or_default();
                if in_account != a.id {
                    return Err(err(
                        &format!("accounts[{i}].role"),
                        format!(
                            "'{r}' is a role in account {in_account}, not in account {}",
                            a.id
                        ),
                    ));
                }
                Some(r.to_string())
            }
            r => {
                return Err(err(
                    &format!("accounts[{i}].role"),
                    format!("'{r}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                ))
            }
        };
        accounts.push(Account {
            id: a.id.clone(),
            role_arn,
        });
    }
    Ok(accounts)
}

/// `[organization]`, checked even when disabled so that a typo does not wait for the day it is
/// switched on.
fn organization(
    o: &RawOrganization,
    accounts: &[Account],
) -> Result<Option<Organization>, ConfigError> {
    let role_name = o.role_name.trim();
    if !is_role_name(role_name) {
        return Err(err(
            "organization.role_name",
            format!(
                "'{role_name}' is not an IAM role name (1-64 of A-Z a-z 0-9 + = , . @ _ -, no path)"
            ),
        ));
    }
    let mut exclude: Vec<String> = Vec::new();
    for (n, a) in o.exclude.iter().enumerate() {
        let field = format!("organization.exclude[{n}]");
        if !is_account_id(a) {
            return Err(err(&field, format!("'{a}' is not a 12-digit account id")));
        }
        // Listing an account and excluding it at once is a contradiction, not a preference.
        if let Some(i) = accounts.iter().position(|b| b.id == *a) {
            return Err(err(
                &field,
                format!("account {a} is also listed in accounts[{i}]; remove one of the two"),
            ));
        }
        if !exclude.contains(a) {
            exclude.push(a.clone());
        }
    }
    Ok(o.enabled.then(|| Organization {
        role_name: role_name.to_string(),
        exclude,
        include_own_account: o.include_own_account,
    }))
}

/// `[inactivity]`: `min_age_days` defaults to the threshold.
fn inactivity(i: &RawInactivity) -> Result<Inactivity, ConfigError> {
    Ok(Inactivity {
        threshold: days("inactivity.threshold_days", i.threshold_days, 1)?,
        key_threshold: days("inactivity.key_threshold_days", i.key_threshold_days, 1)?,
        min_age: days(
            "inactivity.min_age_days",
            i.min_age_days.unwrap_or(i.threshold_days),
            0,
        )?,
        confirm_with_access_advisor: i.confirm_with_access_advisor,
    })
}

/// `[ladder]`: the waits between steps and what `delete` does.
fn ladder(l: &RawLadder) -> Result<Ladder, ConfigError> {
    Ok(Ladder {
        notice_to_quarantine: days(
            "ladder.notice_to_quarantine_days",
            l.notice_to_quarantine_days,
            0,
        )?,
        quarantine_to_keys: days(
            "ladder.quarantine_to_keys_days",
            l.quarantine_to_keys_days,
            0,
        )?,
        to_delete: days("ladder.to_delete_days", l.to_delete_days, 0)?,
        delete: match l.delete {
            RawDeleteMode::Enabled => DeleteMode::Enabled,
            RawDeleteMode::Approval => DeleteMode::Approval,
            RawDeleteMode::Never => DeleteMode::Never,
        },
        cooloff: days("ladder.cooloff_days", l.cooloff_days, 0)?,
    })
}

/// `[exemptions]`: account ids, and globs that can match (path + name starts with '/').
fn exemptions(e: &RawExemptions) -> Result<Exemptions, ConfigError> {
    let max_duration = days("exemptions.max_days", e.max_days, 1)?;
    for (n, a) in e.accounts.iter().enumerate() {
        if !is_account_id(a) {
            return Err(err(
                &format!("exemptions.accounts[{n}]"),
                format!("'{a}' is not a 12-digit account id"),
            ));
        }
    }
    for (n, g) in e.globs.iter().enumerate() {
        if !g.starts_with('/') && !g.starts_with('*') {
            return Err(err(
                &format!("exemptions.globs[{n}]"),
                format!("'{g}' never matches: globs match path + name, which starts with '/' (e.g. '/{g}')"),
            ));
        }
    }
    Exemptions::new(&e.globs, e.require_until, max_duration, e.accounts.clone()).map_err(
        |(pattern, why)| {
            let n = e.globs.iter().position(|g| *g == pattern).unwrap_or(0);
            err(
                &format!("exemptions.globs[{n}]"),
                format!("'{pattern}' is not a valid glob: {why}"),
            )
        },
    )
}

/// `[breaker]`: the fraction is in (0, 1].
fn breaker(b: &RawBreaker) -> Result<BreakerLimits, ConfigError> {
    let fraction = b.max_quarantine_fraction;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(err(
            "breaker.max_quarantine_fraction",
            format!("must be more than 0 and at most 1, got {fraction}"),
        ));
    }
    Ok(BreakerLimits {
        max_actions_per_run: count("breaker.max_actions_per_run", b.max_actions_per_run, 1)?,
        max_quarantine_fraction: fraction,
        min_count: count("breaker.min_count", b.min_count, 1)?,
    })
}

/// `[fallback]`: steps that have a document, and the role to run them as when any is listed.
fn fallback(f: &RawFallback) -> Result<(Vec<Step>, Option<String>), ConfigError> {
    let mut ssm_steps = Vec::new();
    for (n, s) in f.ssm_steps.iter().enumerate() {
        let step = match s.parse::<Step>() {
            Ok(step) if has_document(step) => step,
            _ => {
                let carried: Vec<&str> = Step::ALL
                    .into_iter()
                    .filter(|st| has_document(*st))
                    .map(Step::as_str)
                    .collect();
                return Err(err(
                    &format!("fallback.ssm_steps[{n}]"),
                    format!(
                        "'{s}' has no SSM document (expected one of {})",
                        carried.join(", ")
                    ),
                ));
            }
        };
        if !ssm_steps.contains(&step) {
            ssm_steps.push(step);
        }
    }
    let automation_role = match f.automation_role.trim() {
        "" => None,
        r if is_role_arn(r) => Some(r.to_string()),
        r => {
            return Err(err(
                "fallback.automation_role",
                format!("'{r}' is not an IAM role ARN"),
            ))
        }
    };
    if !ssm_steps.is_empty() && automation_role.is_none() {
        return Err(err(
            "fallback.automation_role",
            "required when fallback.ssm_steps is not empty",
        ));
    }
    Ok((ssm_steps, automation_role))
}

/// `[timeouts]`: 1 to 900 seconds each; the operation bounds the whole call.
fn timeouts(t: &RawTimeouts) -> Result<Timeouts, ConfigError> {
    let secs = |field: &str, value: i64| -> Result<std::time::Duration, ConfigError> {
        if !(1..=900).contains(&value) {
            return Err(err(
                field,
                format!("must be 1 to 900 seconds (a Lambda run's limit), got {value}"),
            ));
        }
        Ok(std::time::Duration::from_secs(value.unsigned_abs()))
    };
    let checked = Timeouts {
        connect: secs("timeouts.connect_secs", t.connect_secs)?,
        read: secs("timeouts.read_secs", t.read_secs)?,
        operation: secs("timeouts.operation_secs", t.operation_secs)?,
    };
    if checked.operation < checked.read || checked.operation < checked.connect {
        return Err(err(
            "timeouts.operation_secs",
            "must be at least connect_secs and read_secs (it bounds the whole call)",
        ));
    }
    Ok(checked)
}

fn days(field: &str, value: i64, min: i64) -> Result<Duration, ConfigError> {
    if value < min {
        let what = if min == 0 {
            "must be zero or more".to_string()
        } else {
            format!("must be at least {min}")
        };
        return Err(err(field, format!("{what}, got {value}")));
    }
    // Ten years is far past any sensible wait and keeps date arithmetic far from overflow.
    if value > 3650 {
        return Err(err(
            field,
            format!("must be at most 3650 days, got {value}"),
        ));
    }
    Ok(Duration::days(value))
}

fn count(field: &str, value: i64, min: i64) -> Result<u32, ConfigError> {
    if value < min || value > i64::from(u32::MAX) {
        return Err(err(field, format!("must be at least {min}, got {value}")));
    }
    u32::try_from(value).map_err(|_| err(field, format!("out of range: {value}")))
}

/// DynamoDB table names: 3-255 characters of `[A-Za-z0-9_.-]`.
fn is_table_name(s: &str) -> bool {
    (3..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// IAM role names: 1-64 of `[A-Za-z0-9+=,.@_-]` (no path).
fn is_role_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn is_role_arn(s: &str) -> bool {
    let mut parts = s.splitn(6, ':');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("arn"), Some(p), Some("iam"), Some(""), Some(acct), Some(res))
            if !p.is_empty() && is_account_id(acct) && res.starts_with("role/") && res.len() > 5
    )
}
