//! Secrets dormant reads at start-up (answer-link signing keys, Slack's signing secret): from
//! SSM Parameter Store, Secrets Manager through SSM's reference path, or the environment.

use crate::config::{Answers, KeySource};
use crate::domain::answer::{SigningKey, SigningKeys};
use crate::error::Error;

/// The keys links are signed with, and Slack's signing secret when configured.
pub struct AnswerSecrets {
    pub keys: SigningKeys,
    pub slack: Option<Vec<u8>>,
}

/// Reads every secret `[answers]` names. A missing or short key is a start-up error.
pub async fn load_secrets(
    answers: &Answers,
    ssm: &aws_sdk_ssm::Client,
) -> Result<AnswerSecrets, Error> {
    let key = |bytes: Vec<u8>| SigningKey::new(bytes).map_err(Error::Usage);
    let current = key(read_secret(&answers.key, ssm).await?)?;
    let previous = match &answers.previous_key {
        Some(source) => Some(key(read_secret(source, ssm).await?)?),
        None => None,
    };
    let slack = match &answers.slack_signing_secret {
        Some(source) => Some(read_secret(source, ssm).await?),
        None => None,
    };
    Ok(AnswerSecrets {
        keys: SigningKeys { current, previous },
        slack,
    })
}

/// A secret's value: an SSM SecureString (decrypted), a Secrets Manager secret through SSM's
/// `/aws/reference/secretsmanager/` path (one client for both), or an environment variable.
pub async fn read_secret(source: &KeySource, ssm: &aws_sdk_ssm::Client) -> Result<Vec<u8>, Error> {
    let name = match source {
        KeySource::Env(var) => {
            return std::env::var(var).map(String::into_bytes).map_err(|_| {
                Error::Usage(format!("answers: environment variable {var} is not set"))
            });
        }
        KeySource::Ssm(name) => name.clone(),
        KeySource::SecretsManager(id) => format!("/aws/reference/secretsmanager/{id}"),
    };
    let out = ssm
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            Error::Usage(format!(
                "answers: cannot read the secret {name}: {}",
                aws_sdk_ssm::error::DisplayErrorContext(e)
            ))
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(|v| v.trim().as_bytes().to_vec())
        .ok_or_else(|| Error::Usage(format!("answers: the secret {name} has no value")))
}
