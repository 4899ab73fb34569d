//! The configuration file (docs/design.md, 'Configuration'): TOML on the command line, the same shape as JSON in
//! `DORMANT_CONFIG` for the Lambda. Every key has a default, so an empty file is valid. Parsing is
//! two-stage (ripgrep's LowArgs → HiArgs): [`RawConfig`] only mirrors the file; [`Config`] is
//! checked, with durations and compiled globs, and every error names its field.
//!
//! - this file: the validated [`Config`], its errors and the two loaders;
//! - `raw.rs`: [`RawConfig`], the file as written, with the defaults;
//! - `validate.rs`: [`RawConfig::validate`], one function per `[section]`.

use std::fmt;
use std::path::Path;

use crate::domain::policy::Policy;
use crate::domain::stage::Step;

mod answers;
mod raw;
mod validate;

pub use answers::{Answers, KeySource, RawAnswers};

pub use raw::*;
pub use validate::check_webhook;

/// A configuration error: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `ladder.notice_to_quarantine_days`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration: {}: {}", self.field, self.message)
        }
    }
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Checked `[timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: std::time::Duration,
    pub read: std::time::Duration,
    pub operation: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let raw = RawTimeouts::default();
        let secs = |n: i64| std::time::Duration::from_secs(n.unsigned_abs());
        Timeouts {
            connect: secs(raw.connect_secs),
            read: secs(raw.read_secs),
            operation: secs(raw.operation_secs),
        }
    }
}

/// A member account and the role dormant assumes in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub role_arn: Option<String>,
}

/// Discovery of member accounts with AWS Organizations (`[organization] enabled = true`).
///
/// Discovered accounts are merged with `accounts`: an account listed in both is swept once, with
/// the role its `accounts` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// The role assumed in every discovered account: `arn:PARTITION:iam::ID:role/ROLE_NAME`.
    pub role_name: String,
    /// Discovered accounts never swept.
    pub exclude: Vec<String>,
    /// Whether the controller's own account is swept when Organizations lists it (with the
    /// controller's own credentials, no AssumeRole).
    pub include_own_account: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub event_bus: String,
    /// Empty (and no `organization`): the caller's own account.
    pub accounts: Vec<Account>,
    /// `Some` when member accounts are also discovered with Organizations.
    pub organization: Option<Organization>,
    /// How many accounts are swept at once.
    pub max_concurrent_accounts: usize,
    /// How many identities of one account are worked on at once.
    pub max_concurrent_identities: usize,
    pub policy: Policy,
    /// Steps always run through SSM Automation.
    pub ssm_steps: Vec<Step>,
    pub automation_role: Option<String>,
    pub config_rules: Vec<String>,
    pub timeouts: Timeouts,
    /// `Some` when dormant reports to Security Hub (`[security_hub] enabled = true`).
    pub security_hub: Option<SecurityHub>,
    /// `Some` when owners are told (`[notify] enabled = true`).
    pub notify: Option<Notify>,
    /// `Some` when owners can answer from their messages (`[answers] base_url`).
    pub answers: Option<Answers>,
}

/// Checked `[notify]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub routing: crate::domain::notify::Routing,
    pub email_from: Option<String>,
    /// Channel (`#team-a`) → webhook URL, as configured inline.
    pub slack_webhooks: std::collections::BTreeMap<String, String>,
    pub slack_webhooks_secret: Option<String>,
    /// Where template overrides are read from.
    pub templates: Option<std::path::PathBuf>,
    /// Failed attempts before a message is dead-lettered (1-100).
    pub max_attempts: u32,
}

/// Checked `[security_hub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHub {
    /// `None`: the SDK's region.
    pub region: Option<String>,
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw = RawConfig::from_toml(text)?;
        raw.validate()
    }

    /// The Lambda's form: the same shape as JSON.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let message = e.inner().to_string();
            err(if field == "." { "" } else { &field }, message)
        })?;
        raw.validate()
    }
}

impl RawConfig {
    /// The file as written, every key it leaves out at its default; not yet checked.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(n) => err("", format!("line {n}: {}", e.message())),
                None => err("", e.message().to_string()),
            }
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let message = match e.inner().message() {
                "" => e.inner().to_string(),
                m => m.to_string(),
            };
            err(if field == "." { "" } else { &field }, message)
        })?;
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::DeleteMode;
    use chrono::Duration;

    fn field_of(text: &str) -> String {
        Config::from_toml(text).unwrap_err().field
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.table, "dormant");
        assert_eq!(c.event_bus, "default");
        assert!(!c.policy.dry_run);
        assert_eq!(c.policy.inactivity.threshold, Duration::days(90));
        assert_eq!(c.policy.inactivity.key_threshold, Duration::days(45));
        assert_eq!(c.policy.inactivity.min_age, Duration::days(90));
        assert_eq!(c.policy.ladder.notice_to_quarantine, Duration::days(7));
        assert_eq!(c.policy.ladder.quarantine_to_keys, Duration::days(7));
        assert_eq!(c.policy.ladder.to_delete, Duration::days(16));
        assert_eq!(c.policy.ladder.delete, DeleteMode::Enabled);
        assert_eq!(c.policy.ladder.cooloff, Duration::days(30));
        assert_eq!(c.policy.breaker.max_actions_per_run, 25);
        assert_eq!(c.policy.breaker.min_count, 5);
        assert_eq!(c.config_rules.len(), 2);
        assert!(c.accounts.is_empty() && c.ssm_steps.is_empty());
    }

    #[test]
    fn a_member_role_in_another_account_than_its_id_is_refused() {
        let text = r#"accounts = [{ id = "111122223333", role = "arn:aws:iam::444455556666:role/dormant-member" }]"#;
        let e = Config::from_toml(text).unwrap_err();
        assert_eq!(e.field, "accounts[0].role");
        assert!(
            e.message
                .contains("in account 444455556666, not in account 111122223333"),
            "{e}"
        );
        let ok = r#"accounts = [{ id = "111122223333", role = "arn:aws:iam::111122223333:role/dormant-member" }]"#;
        assert!(Config::from_toml(ok).is_ok());
    }

    #[test]
    fn timeouts_are_checked_and_default_to_bounded_values() {
        let t = Config::from_toml("").unwrap().timeouts;
        assert_eq!(t.operation, std::time::Duration::from_secs(120));
        assert_eq!(field_of("[timeouts]\nread_secs = 0"), "timeouts.read_secs");
        assert_eq!(
            field_of("[timeouts]\noperation_secs = 901"),
            "timeouts.operation_secs"
        );
        assert_eq!(
            field_of("[timeouts]\nread_secs = 90\noperation_secs = 60"),
            "timeouts.operation_secs"
        );
    }

    #[test]
    fn access_advisor_confirmation_is_off_unless_asked_for() {
        let off = Config::from_toml("").unwrap();
        assert!(!off.policy.inactivity.confirm_with_access_advisor);
        let on = Config::from_toml("[inactivity]\nconfirm_with_access_advisor = true").unwrap();
        assert!(on.policy.inactivity.confirm_with_access_advisor);
        let json =
            Config::from_json(r#"{"inactivity": {"confirm_with_access_advisor": true}}"#).unwrap();
        assert!(json.policy.inactivity.confirm_with_access_advisor);
        assert_eq!(
            field_of("[inactivity]\nconfirm_with_access_advisor = \"yes\""),
            "inactivity.confirm_with_access_advisor"
        );
    }

    #[test]
    fn notify_is_off_unless_asked_for_and_every_recipient_is_checked() {
        assert_eq!(Config::from_toml("").unwrap().notify, None);
        let on = Config::from_toml(
            r##"[notify]
enabled = true
email_from = "dormant@example.com"
fallback = "secops@example.com"
feed = "sns:arn:aws:sns:us-east-1:111122223333:feed"
routes = { "team-a" = "slack:#team-a", "111122223333" = "ops@example.com" }
slack_webhooks = { "#team-a" = "https://hooks.slack.com/services/T/B/x" }
"##,
        )
        .unwrap()
        .notify
        .unwrap();
        assert_eq!(on.routing.owner_tags[0], "dormant:owner");
        assert_eq!(on.max_attempts, 10);
        assert_eq!(on.routing.routes.len(), 2);
        assert_eq!(on.email_from.as_deref(), Some("dormant@example.com"));
        for (toml, field) in [
            ("[notify]\nfallback = \"alice\"", "notify.fallback"),
            (
                "[notify]\nfeed = \"sns:arn:aws:sqs:us-east-1:111122223333:q\"",
                "notify.feed",
            ),
            (
                "[notify]\nroutes = { team = \"slack:team\" }",
                "notify.routes.team",
            ),
            (
                "[notify]\naccount_fallback = { \"12\" = \"a@example.com\" }",
                "notify.account_fallback.12",
            ),
            (
                "[notify]\nslack_webhooks = { \"#a\" = \"http://hooks.example.com\" }",
                "notify.slack_webhooks.#a",
            ),
            (
                "[notify]\nemail_from = \"Dormant <d@example.com>\"",
                "notify.email_from",
            ),
            (
                "[notify]\nenabled = true\nfallback = \"a@example.com\"",
                "notify.email_from",
            ),
            ("[notify]\nowner_tags = [\"\"]", "notify.owner_tags"),
            ("[notify]\nroute = {}", "notify.route"),
            ("[notify]\nmax_attempts = 0", "notify.max_attempts"),
            ("[notify]\nmax_attempts = 101", "notify.max_attempts"),
        ] {
            assert_eq!(field_of(toml), field, "{toml}");
        }
    }

    #[test]
    fn security_hub_is_off_unless_asked_for_and_its_region_is_checked() {
        assert_eq!(Config::from_toml("").unwrap().security_hub, None);
        let on = Config::from_toml("[security_hub]\nenabled = true").unwrap();
        assert_eq!(on.security_hub, Some(SecurityHub { region: None }));
        let json =
            Config::from_json(r#"{"security_hub": {"enabled": true, "region": "eu-west-1"}}"#)
                .unwrap();
        assert_eq!(
            json.security_hub,
            Some(SecurityHub {
                region: Some("eu-west-1".into())
            })
        );
        let e =
            Config::from_toml("[security_hub]\nenabled = true\nregion = \"Europe\"").unwrap_err();
        assert_eq!(e.field, "security_hub.region");
        assert!(e.message.contains("not an AWS region"), "{e}");
        // Checked even when off, so a typo does not wait for the day it is switched on.
        assert_eq!(
            field_of("[security_hub]\nregion = \"us east 1\""),
            "security_hub.region"
        );
        assert_eq!(
            field_of("[security_hub]\nenable = true"),
            "security_hub.enable"
        );
    }

    #[test]
    fn min_age_defaults_to_the_threshold() {
        let c = Config::from_toml("[inactivity]\nthreshold_days = 120").unwrap();
        assert_eq!(c.policy.inactivity.min_age, Duration::days(120));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of("[ladder]\nnotice_to_quarantine_days = -1"),
            "ladder.notice_to_quarantine_days"
        );
        assert_eq!(field_of("[ladder]\nfoo = 1"), "ladder.foo");
        assert_eq!(field_of("bogus = true"), "bogus");
        assert_eq!(
            field_of("[ladder]\ndelete = \"sometimes\""),
            "ladder.delete"
        );
        assert_eq!(
            field_of("[inactivity]\nthreshold_days = \"ninety\""),
            "inactivity.threshold_days"
        );
        assert_eq!(
            field_of("[exemptions]\nglobs = [\"/ok-*\", \"/bad[\"]"),
            "exemptions.globs[1]"
        );
        assert_eq!(
            field_of("[breaker]\nmax_quarantine_fraction = 1.5"),
            "breaker.max_quarantine_fraction"
        );
        assert_eq!(field_of("[[accounts]]\nid = \"12345\""), "accounts[0].id");
        assert_eq!(
            field_of("[fallback]\nssm_steps = [\"notice\"]"),
            "fallback.ssm_steps[0]"
        );
        assert_eq!(
            field_of("[fallback]\nssm_steps = [\"delete\"]"),
            "fallback.automation_role"
        );
        assert_eq!(field_of("table = \"x\""), "table");
        assert_eq!(
            field_of("[organization]\nenabled = true\nrole_name = \"a/b\""),
            "organization.role_name"
        );
        assert_eq!(
            field_of("[organization]\nexclude = [\"123456789012\", \"12\"]"),
            "organization.exclude[1]"
        );
        assert_eq!(
            field_of("[organization]\nenable = true"),
            "organization.enable"
        );
    }

    #[test]
    fn organization_discovery_is_off_by_default_and_validated_when_on() {
        assert_eq!(Config::from_toml("").unwrap().organization, None);
        let c = Config::from_toml(
            "[organization]\nenabled = true\nrole_name = \"DormantMember\"\nexclude = [\"111111111111\", \"111111111111\"]",
        )
        .unwrap();
        assert_eq!(
            c.organization,
            Some(Organization {
                role_name: "DormantMember".into(),
                exclude: vec!["111111111111".into()],
                include_own_account: false,
            })
        );
    }

    #[test]
    fn an_account_both_listed_and_excluded_is_rejected() {
        let e = Config::from_toml(
            "[[accounts]]\nid = \"111111111111\"\nrole = \"arn:aws:iam::111111111111:role/r\"\n[organization]\nenabled = true\nexclude = [\"111111111111\"]",
        )
        .unwrap_err();
        assert_eq!(e.field, "organization.exclude[0]");
        assert!(e.message.contains("accounts[0]"), "{e}");
    }

    #[test]
    fn unknown_key_message_lists_the_valid_ones() {
        let e = Config::from_toml("[ladder]\nnotice_days = 3").unwrap_err();
        assert!(e.to_string().contains("ladder.notice_days"), "{e}");
        assert!(e.message.contains("notice_to_quarantine_days"), "{e}");
    }

    #[test]
    fn json_has_the_same_shape() {
        let c =
            Config::from_json(r#"{"dry_run": true, "ladder": {"delete": "approval"}}"#).unwrap();
        assert!(c.policy.dry_run);
        assert_eq!(c.policy.ladder.delete, DeleteMode::Approval);
        let e = Config::from_json(r#"{"ladder": {"to_delete_days": -2}}"#).unwrap_err();
        assert_eq!(e.field, "ladder.to_delete_days");
    }

    #[test]
    fn the_shipped_example_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../dormant.example.toml");
        let example: RawConfig = toml::from_str(text).unwrap();
        assert_eq!(
            example,
            RawConfig {
                inactivity: RawInactivity {
                    min_age_days: Some(90),
                    ..RawInactivity::default()
                },
                ..RawConfig::default()
            }
        );
        Config::from_toml(text).unwrap();
    }
}
