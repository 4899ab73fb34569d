//! `[answers]`: where owners' answer links point and where their signing key is kept
//! (docs/design.md, 'Answers').

use serde::{Deserialize, Serialize};

use super::{err, ConfigError};

/// `[answers]` as written. Off while `key_source` is empty; `base_url` is needed to mint links
/// (the function URL is only known once deployed: the page is served without it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAnswers {
    /// The function URL (or `http://127.0.0.1:PORT` of `dormant serve`) links point to.
    pub base_url: String,
    /// `secretsmanager:<arn or name>`, `ssm:<SecureString name>` or `env:VAR` (local use only).
    pub key_source: String,
    /// The key before the last rotation: links signed with it keep working until they expire.
    pub previous_key_source: String,
    /// Slack's signing secret, same syntax; empty: Slack's button requests are refused.
    pub slack_signing_secret_source: String,
    /// The answers function's role in each account when it is not named `dormant-answers`
    /// (the stacks fill it): protected like dormant's other roles.
    pub role_name: String,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A Secrets Manager secret (its string value), read through SSM's
    /// `/aws/reference/secretsmanager/` parameter path.
    SecretsManager(String),
    /// An SSM SecureString parameter, decrypted.
    Ssm(String),
    /// An environment variable: for local runs, the demo and tests.
    Env(String),
}

impl KeySource {
    pub fn parse(field: &str, s: &str) -> Result<Self, ConfigError> {
        let (kind, name) = s.split_once(':').unwrap_or(("", ""));
        let name = name.trim();
        if name.is_empty() {
            return Err(err(
                field,
                format!(
                    "'{s}' is not secretsmanager:<arn or name>, ssm:<parameter name> or env:VAR"
                ),
            ));
        }
        match kind {
            "secretsmanager" => Ok(KeySource::SecretsManager(name.to_string())),
            "ssm" => Ok(KeySource::Ssm(name.to_string())),
            "env" => Ok(KeySource::Env(name.to_string())),
            _ => Err(err(
                field,
                format!("'{s}': the source must start with secretsmanager:, ssm: or env:"),
            )),
        }
    }
}

/// Checked `[answers]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    /// `None`: answers are served, but no link can be minted until it is set.
    pub base_url: Option<String>,
    pub key: KeySource,
    pub previous_key: Option<KeySource>,
    pub slack_signing_secret: Option<KeySource>,
}

/// Whether `base` is plain HTTP to this machine (`dormant serve`): the host exactly
/// `127.0.0.1`, `localhost` or `[::1]`, with at most a port (so not `localhost.example.com`,
/// nor `127.0.0.1@example.com`).
fn loopback_http(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix("[::1]") {
        Some(port) => ("[::1]", port),
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port_ok = match port.strip_prefix(':') {
        Some(digits) => !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()),
        None => port.is_empty(),
    };
    let host_ok = match host {
        "[::1]" => true,
        _ => host == "127.0.0.1" || host.eq_ignore_ascii_case("localhost"),
    };
    host_ok && port_ok
}

/// `None` when answers are off (no `key_source`).
pub fn answers(raw: &RawAnswers) -> Result<Option<Answers>, ConfigError> {
    let base = raw.base_url.trim().trim_end_matches('/');
    if base.is_empty() && raw.key_source.trim().is_empty() {
        return Ok(None);
    }
    if !(base.is_empty() || base.starts_with("https://") || loopback_http(base)) {
        return Err(err(
            "answers.base_url",
            format!(
                "'{base}' must be an https:// URL (http:// only on 127.0.0.1 for `dormant serve`)"
            ),
        ));
    }
    if raw.key_source.trim().is_empty() {
        return Err(err(
            "answers.key_source",
            "must say where the signing key is kept when answers.base_url is set",
        ));
    }
    let optional = |field: &str, s: &str| {
        (!s.trim().is_empty())
            .then(|| KeySource::parse(field, s.trim()))
            .transpose()
    };
    Ok(Some(Answers {
        base_url: (!base.is_empty()).then(|| base.to_string()),
        key: KeySource::parse("answers.key_source", raw.key_source.trim())?,
        previous_key: optional("answers.previous_key_source", &raw.previous_key_source)?,
        slack_signing_secret: optional(
            "answers.slack_signing_secret_source",
            &raw.slack_signing_secret_source,
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn answers_are_off_until_a_base_url_is_given_and_sources_are_checked() {
        assert_eq!(Config::from_toml("").unwrap().answers, None);
        let on = Config::from_toml(
            "[answers]\nbase_url = \"https://x.lambda-url.eu-west-1.on.aws/\"\nkey_source = \"secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:k\"\nprevious_key_source = \"ssm:/dormant/old\"",
        )
        .unwrap()
        .answers
        .unwrap();
        assert_eq!(
            on.base_url.as_deref(),
            Some("https://x.lambda-url.eu-west-1.on.aws")
        );
        let no_url = Config::from_toml("[answers]\nkey_source = \"env:K\"").unwrap();
        assert_eq!(no_url.answers.unwrap().base_url, None);
        assert_eq!(
            on.key,
            KeySource::SecretsManager("arn:aws:secretsmanager:eu-west-1:1:secret:k".into())
        );
        assert_eq!(on.previous_key, Some(KeySource::Ssm("/dormant/old".into())));
        for (toml, field) in [
            (
                "base_url = \"http://example.com\"\nkey_source = \"env:K\"",
                "answers.base_url",
            ),
            (
                "base_url = \"http://localhost.evil.example\"\nkey_source = \"env:K\"",
                "answers.base_url",
            ),
            (
                "base_url = \"http://127.0.0.1.evil.example:80\"\nkey_source = \"env:K\"",
                "answers.base_url",
            ),
            (
                "base_url = \"http://127.0.0.1@evil.example\"\nkey_source = \"env:K\"",
                "answers.base_url",
            ),
            ("base_url = \"https://x\"", "answers.key_source"),
            (
                "base_url = \"https://x\"\nkey_source = \"vault:k\"",
                "answers.key_source",
            ),
            (
                "base_url = \"https://x\"\nkey_source = \"env:K\"\nprevious_key_source = \"ssm:\"",
                "answers.previous_key_source",
            ),
        ] {
            let e = Config::from_toml(&format!("[answers]\n{toml}")).unwrap_err();
            assert_eq!(e.field, field, "{toml}");
        }
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9000/",
        ] {
            let toml = format!("[answers]\nbase_url = \"{local}\"\nkey_source = \"env:K\"");
            let parsed = Config::from_toml(&toml);
            assert!(parsed.is_ok(), "{local}: {:?}", parsed.err());
        }
    }

    #[test]
    fn a_renamed_answers_role_is_protected_and_a_bad_name_is_refused() {
        use crate::domain::PrincipalKind;
        let config = Config::from_toml("[answers]\nrole_name = \"owners-answers\"").unwrap();
        assert!(config
            .policy
            .exemptions
            .controller
            .contains(&(PrincipalKind::Role, "owners-answers".to_string())));
        let e = Config::from_toml("[answers]\nrole_name = \"no spaces\"").unwrap_err();
        assert_eq!(e.field, "answers.role_name");
    }
}
