//! The configuration file as written: every key optional, unknown keys refused. Nothing here is
//! checked; `validate.rs` turns it into a [`Config`](super::Config).

use serde::{Deserialize, Serialize};

/// The file as written. Unknown keys are errors that name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub table: String,
    pub event_bus: String,
    pub dry_run: bool,
    pub accounts: Vec<RawAccount>,
    pub max_concurrent_accounts: i64,
    pub max_concurrent_identities: i64,
    pub organization: RawOrganization,
    pub inactivity: RawInactivity,
    pub ladder: RawLadder,
    pub exemptions: RawExemptions,
    pub breaker: RawBreaker,
    pub fallback: RawFallback,
    pub sources: RawSources,
    pub timeouts: RawTimeouts,
    pub security_hub: RawSecurityHub,
    pub notify: RawNotify,
    pub answers: super::answers::RawAnswers,
}

/// `[notify]`: telling each identity's owner (docs/design.md, 'Owners and messages').
/// Recipients are written `alice@example.com`, `slack:#channel` or `sns:TOPIC_ARN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    pub enabled: bool,
    /// Tag keys read for the owner, first match wins.
    pub owner_tags: Vec<String>,
    /// Tag value or account id → recipient.
    pub routes: std::collections::BTreeMap<String, String>,
    /// Account id → recipient for identities without a resolvable owner.
    pub account_fallback: std::collections::BTreeMap<String, String>,
    /// Recipient for identities without a resolvable owner anywhere else; empty: none.
    pub fallback: String,
    /// The security team's feed (any recipient, usually `sns:…`): told of every identity.
    pub feed: String,
    /// The verified SES identity email is sent from; needed when any recipient is an address.
    pub email_from: String,
    /// Slack channel → incoming webhook URL (https).
    pub slack_webhooks: std::collections::BTreeMap<String, String>,
    /// A Secrets Manager secret (ARN or name) whose string is JSON `{"#channel": "https://…"}`:
    /// webhook URLs kept out of the configuration. Read at start-up, merged over `slack_webhooks`.
    pub slack_webhooks_secret: String,
    /// A directory whose files override the built-in templates (`email.html`, `slack.json`, …).
    pub templates: String,
    /// Failed attempts to send a message (one per run) before it is dead-lettered: kept 30 days,
    /// audited, listed by `dormant outbox`, never sent again. 1-100.
    pub max_attempts: u32,
}

impl Default for RawNotify {
    fn default() -> Self {
        RawNotify {
            enabled: false,
            owner_tags: crate::domain::notify::DEFAULT_OWNER_TAGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            routes: Default::default(),
            account_fallback: Default::default(),
            fallback: String::new(),
            feed: String::new(),
            email_from: String::new(),
            slack_webhooks: Default::default(),
            slack_webhooks_secret: String::new(),
            templates: String::new(),
            max_attempts: crate::domain::notify::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// `[security_hub]`: dormant's own findings in Security Hub, and the workflow of the findings
/// that nominated (docs/design.md, 'Security Hub').
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSecurityHub {
    pub enabled: bool,
    /// The region findings are imported in; empty: the SDK's (`AWS_REGION`).
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub id: String,
    #[serde(default)]
    pub role: String,
}

/// `[organization]`: member accounts discovered with AWS Organizations `ListAccounts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOrganization {
    pub enabled: bool,
    pub role_name: String,
    pub exclude: Vec<String>,
    pub include_own_account: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawInactivity {
    pub threshold_days: i64,
    pub key_threshold_days: i64,
    pub min_age_days: Option<i64>,
    /// Ask IAM Access Advisor before quarantine, key deactivation or delete.
    pub confirm_with_access_advisor: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLadder {
    pub notice_to_quarantine_days: i64,
    pub quarantine_to_keys_days: i64,
    pub to_delete_days: i64,
    pub delete: RawDeleteMode,
    pub cooloff_days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawDeleteMode {
    Enabled,
    Approval,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExemptions {
    pub globs: Vec<String>,
    pub require_until: bool,
    pub max_days: i64,
    /// Accounts whose identities are never acted on.
    pub accounts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBreaker {
    pub max_actions_per_run: i64,
    pub max_quarantine_fraction: f64,
    pub min_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFallback {
    pub ssm_steps: Vec<String>,
    pub automation_role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSources {
    pub config_rules: Vec<String>,
}

/// `[timeouts]`: how long any AWS call may take, so a silent endpoint cannot hang a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimeouts {
    pub connect_secs: i64,
    pub read_secs: i64,
    pub operation_secs: i64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        RawTimeouts {
            connect_secs: 5,
            read_secs: 60,
            operation_secs: 120,
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            table: "dormant".to_string(),
            event_bus: "default".to_string(),
            dry_run: false,
            accounts: Vec::new(),
            max_concurrent_accounts: 8,
            max_concurrent_identities: 8,
            organization: RawOrganization::default(),
            inactivity: RawInactivity::default(),
            ladder: RawLadder::default(),
            exemptions: RawExemptions::default(),
            breaker: RawBreaker::default(),
            fallback: RawFallback::default(),
            sources: RawSources::default(),
            timeouts: RawTimeouts::default(),
            security_hub: RawSecurityHub::default(),
            notify: RawNotify::default(),
            answers: Default::default(),
        }
    }
}

impl Default for RawOrganization {
    fn default() -> Self {
        RawOrganization {
            enabled: false,
            role_name: "dormant-member".to_string(),
            exclude: Vec::new(),
            include_own_account: false,
        }
    }
}

impl Default for RawInactivity {
    fn default() -> Self {
        RawInactivity {
            threshold_days: 90,
            key_threshold_days: 45,
            min_age_days: None,
            confirm_with_access_advisor: false,
        }
    }
}

impl Default for RawLadder {
    fn default() -> Self {
        RawLadder {
            notice_to_quarantine_days: 7,
            quarantine_to_keys_days: 7,
            to_delete_days: 16,
            delete: RawDeleteMode::Enabled,
            cooloff_days: 30,
        }
    }
}

impl Default for RawExemptions {
    fn default() -> Self {
        RawExemptions {
            globs: Vec::new(),
            require_until: false,
            max_days: 365,
            accounts: Vec::new(),
        }
    }
}

impl Default for RawBreaker {
    fn default() -> Self {
        RawBreaker {
            max_actions_per_run: 25,
            max_quarantine_fraction: 0.10,
            min_count: 5,
        }
    }
}

impl Default for RawSources {
    fn default() -> Self {
        RawSources {
            config_rules: vec![
                "iam-user-unused-credentials-check".to_string(),
                "iam-role-last-used".to_string(),
            ],
        }
    }
}
