//! Owner messages' set-up: templates, messengers and the signed links they carry.

use super::*;

/// Owner messages: the templates (overrides read now, so a broken one stops start-up), the
/// Slack webhooks (inline, then the Secrets Manager secret's over them), SES and SNS clients.
pub(super) async fn notify_setup(
    n: &crate::config::Notify,
    aws: &SdkConfig,
    calls: &ApiCalls,
    retry: RetryPolicy,
) -> Result<NotifySetup> {
    use crate::config::ConfigError;
    use crate::domain::notify::{Templates, TEMPLATE_FILES};
    let bad = |field: &str, message: String| {
        crate::error::Error::Config(ConfigError {
            field: field.to_string(),
            message,
        })
    };
    let mut overrides = std::collections::BTreeMap::new();
    if let Some(dir) = &n.templates {
        for (name, _) in TEMPLATE_FILES {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    overrides.insert(name.to_string(), text);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(bad(
                        "notify.templates",
                        format!("cannot read {}: {e}", path.display()),
                    ))
                }
            }
        }
    }
    let templates =
        Templates::new(&overrides).map_err(|e| bad("notify.templates", e.to_string()))?;
    let mut webhooks = n.slack_webhooks.clone();
    if let Some(secret) = &n.slack_webhooks_secret {
        let field = "notify.slack_webhooks_secret";
        let out = client!(calls, aws_sdk_secretsmanager, aws)
            .get_secret_value()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| classify("GetSecretValue", e))?;
        let parsed: std::collections::BTreeMap<String, String> =
            serde_json::from_str(out.secret_string().unwrap_or_default()).map_err(|e| {
                bad(
                    field,
                    format!("the secret is not JSON {{\"#channel\": \"https://…\"}}: {e}"),
                )
            })?;
        for (channel, url) in parsed {
            crate::config::check_webhook(field, &url)?;
            webhooks.insert(channel, url);
        }
    }
    let messenger = AwsMessenger::new(
        client!(calls, aws_sdk_sesv2, aws),
        client!(calls, aws_sdk_sns, aws),
        n.email_from.clone(),
        webhooks,
        retry,
    )?;
    Ok(
        NotifySetup::new(n.routing.clone(), Arc::new(templates), Arc::new(messenger))
            .with_max_attempts(n.max_attempts),
    )
}

/// The links owners' messages carry, when `[answers]` has a key and a base URL to point at.
pub(super) async fn signed_links(
    config: &Config,
    aws: &SdkConfig,
    calls: &ApiCalls,
) -> Result<Option<crate::app::answer::SignedLinks>> {
    let Some(answers) = &config.answers else {
        return Ok(None);
    };
    let Some(base_url) = &answers.base_url else {
        warn!("[answers] has no base_url: owners' messages carry no links");
        return Ok(None);
    };
    // Links are signed with the current key only. One that cannot be read turns the links
    // off, not dormant: the ladder goes on.
    let ssm = client!(calls, aws_sdk_ssm, aws);
    let key = crate::adapters::secrets::read_secret(&answers.key, &ssm)
        .await
        .and_then(|bytes| crate::domain::answer::SigningKey::new(bytes).map_err(Error::Usage));
    let key = match key {
        Ok(key) => key,
        Err(e) => {
            error!(error = %e, "owners' messages carry no links: the answer key cannot be read");
            return Ok(None);
        }
    };
    Ok(Some(crate::app::answer::SignedLinks {
        base_url: base_url.clone(),
        key,
        approval: config.policy.ladder.delete == crate::domain::policy::DeleteMode::Approval,
        trusted: config
            .notify
            .as_ref()
            .map(|n| n.routing.configured_recipients())
            .unwrap_or_default(),
    }))
}
