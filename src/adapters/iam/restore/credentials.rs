//! `restore` for a user's public credentials: SSH public keys and signing certificates, which IAM
//! takes again as they are (secrets are named in `not_restored` by the snapshot itself).

use std::future::Future;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::StatusType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use tracing::{info, warn};

use super::super::{classify, missing, status, AwsIam};
use crate::domain::{Principal, RestoreReport, Snapshot};
use crate::ports::PortResult;

/// Upload errors that mean "IAM will not take this material" (malformed, no longer valid, a
/// duplicate it did not list, no room): named in `not_restored`, not retried for ever.
const UPLOAD_REFUSALS: &[&str] = &[
    "DuplicateCertificate",
    "DuplicateSSHPublicKey",
    "InvalidCertificate",
    "InvalidPublicKey",
    "LimitExceeded",
    "MalformedCertificate",
    "UnrecognizedPublicKeyEncoding",
];

impl AwsIam {
    pub(super) async fn restore_public_credentials(
        &self,
        s: &Snapshot,
        report: &mut RestoreReport,
    ) -> PortResult<()> {
        self.restore_public(s, Public::SshKey, report).await?;
        self.restore_public(s, Public::Certificate, report).await
    }

    /// Uploads each SSH public key or signing certificate the user does not have yet, then sets
    /// its status. IAM uploads them active: an inactive one is active until the next call (a
    /// crash in between is mended by the rerun, which finds it and sets its status).
    async fn restore_public(
        &self,
        s: &Snapshot,
        kind: Public,
        report: &mut RestoreReport,
    ) -> PortResult<()> {
        let wanted = match kind {
            Public::SshKey => &s.ssh_public_keys,
            Public::Certificate => &s.signing_certificates,
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let p = &s.principal;
        let user = p.name.as_str();
        let present = match kind {
            Public::SshKey => self.ssh_public_keys(user).await?,
            Public::Certificate => self.signing_certificates(user).await?,
        };
        for item in wanted {
            let line = format!("{} {}", kind.noun(), item.id);
            let (id, active) = match present.iter().find(|h| kind.same(&h.body, &item.body)) {
                Some(have) => (have.id.clone(), have.active),
                None => match self.upload(p, kind, &item.body, &line).await? {
                    Ok(uploaded) => uploaded,
                    Err(why) => {
                        report.not_restored.push(format!("{line}: {why}"));
                        continue;
                    }
                },
            };
            if active != item.active {
                self.set_status(p, kind, &id, item.active).await?;
            }
            let note = if item.active { "" } else { " (inactive)" };
            report.restored.push(format!("{line} as {id}{note}"));
        }
        Ok(())
    }

    /// Uploads one: its new id and whether it is active, or why IAM would not take it (see
    /// [`UPLOAD_REFUSALS`]). Other errors are the caller's.
    async fn upload(
        &self,
        p: &Principal,
        kind: Public,
        body: &str,
        what: &str,
    ) -> PortResult<Result<(String, bool), String>> {
        let c = &self.client;
        let user = p.name.as_str();
        match kind {
            Public::SshKey => {
                const OP: &str = "UploadSSHPublicKey";
                let out = self
                    .uploading(p, OP, what, || {
                        c.upload_ssh_public_key()
                            .user_name(user)
                            .ssh_public_key_body(body)
                            .send()
                    })
                    .await?;
                let o = match out {
                    Ok(o) => o,
                    Err(why) => return Ok(Err(why)),
                };
                let k = o
                    .ssh_public_key()
                    .ok_or_else(|| missing(OP, "SSHPublicKey"))?;
                Ok(Ok((
                    k.ssh_public_key_id().to_string(),
                    k.status() == &StatusType::Active,
                )))
            }
            Public::Certificate => {
                const OP: &str = "UploadSigningCertificate";
                let out = self
                    .uploading(p, OP, what, || {
                        c.upload_signing_certificate()
                            .user_name(user)
                            .certificate_body(body)
                            .send()
                    })
                    .await?;
                let o = match out {
                    Ok(o) => o,
                    Err(why) => return Ok(Err(why)),
                };
                let cert = o.certificate().ok_or_else(|| missing(OP, "Certificate"))?;
                Ok(Ok((
                    cert.certificate_id().to_string(),
                    cert.status() == &StatusType::Active,
                )))
            }
        }
    }

    async fn set_status(
        &self,
        p: &Principal,
        kind: Public,
        id: &str,
        active: bool,
    ) -> PortResult<()> {
        let c = &self.client;
        let user = p.name.as_str();
        let status = status(active);
        match kind {
            Public::SshKey => {
                self.change(p, "UpdateSSHPublicKey", id, || {
                    c.update_ssh_public_key()
                        .user_name(user)
                        .ssh_public_key_id(id)
                        .status(status.clone())
                        .send()
                })
                .await
            }
            Public::Certificate => {
                self.change(p, "UpdateSigningCertificate", id, || {
                    c.update_signing_certificate()
                        .user_name(user)
                        .certificate_id(id)
                        .status(status.clone())
                        .send()
                })
                .await
            }
        }
    }

    /// An uploading call: the output, or IAM's reason for refusing the material.
    async fn uploading<T, E, F, Fut>(
        &self,
        p: &Principal,
        op: &'static str,
        what: &str,
        f: F,
    ) -> PortResult<Result<T, String>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        info!(principal = %p.arn(), operation = op, target = what, "IAM change");
        self.retry
            .run(|| {
                let fut = f();
                async move {
                    match fut.await {
                        Ok(out) => Ok(Ok(out)),
                        Err(e) if e.code().is_some_and(|c| UPLOAD_REFUSALS.contains(&c)) => {
                            warn!(operation = op, target = what, error = ?e.code(), "upload refused");
                            Ok(Err(format!(
                                "IAM refused the upload ({}: {})",
                                e.code().unwrap_or_default(),
                                e.message().unwrap_or("no message")
                            )))
                        }
                        Err(e) => Err(classify(op, e)),
                    }
                }
            })
            .await
    }
}

/// Public material a user can have uploaded.
#[derive(Clone, Copy)]
enum Public {
    SshKey,
    Certificate,
}

impl Public {
    fn noun(self) -> &'static str {
        match self {
            Public::SshKey => "SSH public key",
            Public::Certificate => "signing certificate",
        }
    }

    /// The same key (type and key data; a trailing comment may differ) or the same PEM
    /// certificate, whatever its line breaks.
    fn same(self, a: &str, b: &str) -> bool {
        match self {
            Public::SshKey => a
                .split_whitespace()
                .take(2)
                .eq(b.split_whitespace().take(2)),
            Public::Certificate => a
                .split_whitespace()
                .flat_map(str::chars)
                .eq(b.split_whitespace().flat_map(str::chars)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_certificates_match_by_content_not_layout() {
        let key = |a, b| Public::SshKey.same(a, b);
        let cert = |a, b| Public::Certificate.same(a, b);
        assert!(key("ssh-rsa AAAAB3Nza key@laptop", "ssh-rsa  AAAAB3Nza\n"));
        assert!(!key("ssh-rsa AAAAB3Nza", "ssh-rsa AAAAB3Nzb"));
        assert!(!key("ssh-rsa AAAA", "ssh-ed25519 AAAA"));
        assert!(cert(
            "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\r\nMIIBAAAA\r\n-----END CERTIFICATE-----"
        ));
        assert!(!cert("MIIB", "MIIC"));
    }
}
