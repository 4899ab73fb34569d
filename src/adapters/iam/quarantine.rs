//! dormant's quarantine in IAM: its managed deny policy, attached only after its document is
//! checked, and the inline policy earlier versions wrote, recognised by its document so that an
//! operator's inline policy that happens to carry the name is never deleted.

use aws_sdk_iam::types::{AttachedPolicy, PolicyDetail};
use tracing::{info, warn};

use super::{decode_document, AwsIam};
use crate::adapters::{ErrorKind, PortError, PortResult};
use crate::domain::quarantine::{self, is_quarantine_name};
use crate::domain::Principal;

impl AwsIam {
    /// One inline policy's document (URL-decoded), `None` when there is no such policy.
    async fn inline_document_if_any(
        &self,
        p: &Principal,
        policy: &str,
    ) -> PortResult<Option<String>> {
        match self.inline_document(p, policy).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// For each of dormant's policy names the principal has (of `names`, its inline policies):
    /// the name and whether the policy under it is dormant's.
    pub(super) async fn quarantine_policies(
        &self,
        p: &Principal,
        names: &[String],
    ) -> PortResult<Vec<(String, bool)>> {
        let mut found = Vec::new();
        for name in names.iter().filter(|n| is_quarantine_name(n)) {
            if let Some(doc) = self.inline_document_if_any(p, name).await? {
                found.push((name.clone(), quarantine::is_dormants(p, &doc)));
            }
        }
        Ok(found)
    }

    /// Whether dormant's quarantine is in place, on a fresh read: its managed policy attached, or
    /// an inline policy of an earlier version (of `inline`, the principal's inline policy names).
    pub(super) async fn has_own_quarantine(
        &self,
        p: &Principal,
        inline: &[String],
    ) -> PortResult<bool> {
        let arn = quarantine::policy_arn_for(p);
        if self.attached_arns(p).await?.contains(&arn) {
            return Ok(true);
        }
        let found = self.quarantine_policies(p, inline).await?;
        Ok(found.iter().any(|(_, own)| *own))
    }

    /// Attaches dormant's quarantine policy, unless it is attached already. The policy's default
    /// version is read first: dormant attaches it only while it is a deny-all that grants nothing.
    pub(super) async fn put_quarantine(&self, p: &Principal) -> PortResult<()> {
        let arn = quarantine::policy_arn_for(p);
        if self.attached_arns(p).await?.contains(&arn) {
            info!(principal = %p.arn(), policy = %arn, "quarantine policy already attached");
            return Ok(());
        }
        self.check_quarantine_policy(p, &arn).await?;
        let Err(e) = self.attach(p, &arn).await else {
            return Ok(());
        };
        if !e.message.starts_with("LimitExceeded") {
            return Err(e);
        }
        // An identity an earlier version quarantined with its inline deny is quarantined.
        let inline = self.inline_names(p).await?;
        let found = self.quarantine_policies(p, &inline).await?;
        if found.iter().any(|(_, own)| *own) {
            info!(principal = %p.arn(), "an earlier version's quarantine policy is in place");
            return Ok(());
        }
        Err(PortError::new(
            e.kind,
            &e.operation,
            format!(
                "{} has as many managed policies attached as IAM allows (10 unless the account's \
                 quota was raised), so dormant's quarantine policy {arn} cannot be attached; \
                 nothing was changed. Detach a policy or raise the quota 'Managed policies per \
                 role/user'. ({})",
                p.arn(),
                e.message
            ),
        ))
    }

    /// Refuses (nothing changed) unless `arn` exists and its default version denies everything
    /// and allows nothing.
    async fn check_quarantine_policy(&self, p: &Principal, arn: &str) -> PortResult<()> {
        let c = &self.client;
        let refused = |e: PortError| {
            if e.kind == ErrorKind::NotFound {
                PortError::new(
                    ErrorKind::Permanent,
                    &e.operation,
                    format!(
                        "dormant's quarantine policy {arn} does not exist in account {}: deploy \
                         dormant's member stack there (or run `dormant init` with credentials of \
                         that account); nothing was changed on {}",
                        p.account,
                        p.arn()
                    ),
                )
            } else if e.kind == ErrorKind::AccessDenied {
                // Not a refusal to hand to SSM: the automation role is granted the same read
                // (and the document reads the policy too), so an execution would only be
                // refused later, with the cause further away. A failure of the step, recorded
                // and retried, naming the grant that is missing.
                PortError::new(
                    ErrorKind::Permanent,
                    &e.operation,
                    format!(
                        "dormant may not read its quarantine policy {arn} ({}), so it cannot \
                         check that the policy denies everything before attaching it; nothing \
                         was changed on {} (not handed to SSM Automation either). Grant \
                         iam:GetPolicy and iam:GetPolicyVersion on the policy (dormant's stacks \
                         do: statement QuarantinePolicyRead). ({})",
                        e.operation,
                        p.arn(),
                        e.message
                    ),
                )
            } else {
                e
            }
        };
        let policy = self
            .call("GetPolicy", || c.get_policy().policy_arn(arn).send())
            .await
            .map_err(refused)?;
        let version = policy
            .policy()
            .and_then(|p| p.default_version_id())
            .unwrap_or("v1")
            .to_string();
        let out = self
            .call("GetPolicyVersion", || {
                c.get_policy_version()
                    .policy_arn(arn)
                    .version_id(&version)
                    .send()
            })
            .await
            .map_err(refused)?;
        let document = out
            .policy_version()
            .and_then(|v| v.document())
            .unwrap_or_default();
        let document = decode_document("GetPolicyVersion", document)?;
        if quarantine::denies_all_and_grants_nothing(&document) {
            Ok(())
        } else {
            warn!(policy = %arn, version = %version, "quarantine policy is not a deny-all; not attached");
            Err(PortError::new(
                ErrorKind::Permanent,
                "GetPolicyVersion",
                format!(
                    "dormant's quarantine policy {arn} (version {version}) is not a deny-all that \
                     grants nothing, so dormant attaches it to no one; nothing was changed on {}. \
                     Restore its document to a single Deny of * on * (dormant's member stack \
                     creates it so)",
                    p.arn()
                ),
            ))
        }
    }

    /// `dormant init`: creates dormant's quarantine policy in this adapter's account unless it is
    /// there. `(arn, created)`; an existing policy that is not a deny-all is an error, left as
    /// it is.
    pub async fn ensure_quarantine_policy(&self) -> PortResult<(String, bool)> {
        let arn = quarantine::policy_arn(&self.partition, &self.account);
        let c = &self.client;
        match self
            .call("GetPolicy", || c.get_policy().policy_arn(&arn).send())
            .await
        {
            Ok(_) => {
                let here = Principal::role(&self.account, "/", "-").in_partition(&self.partition);
                self.check_quarantine_policy(&here, &arn).await?;
                Ok((arn, false))
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                let document = quarantine::managed_document();
                self.call("CreatePolicy", || {
                    c.create_policy()
                        .policy_name(quarantine::MANAGED_POLICY_NAME)
                        .path(quarantine::MANAGED_POLICY_PATH)
                        .description(
                            "dormant's quarantine: denies everything (attached by dormant)",
                        )
                        .policy_document(&document)
                        .send()
                })
                .await?;
                info!(policy = %arn, "quarantine policy created");
                Ok((arn, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Removes dormant's quarantine: detaches its managed policy and deletes an inline one an
    /// earlier version wrote; a policy of the same name that dormant did not write stays.
    pub(super) async fn delete_quarantine(&self, p: &Principal) -> PortResult<()> {
        let arn = quarantine::policy_arn_for(p);
        let attached = match self.attached_arns(p).await {
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        if attached.contains(&arn) {
            self.detach(p, &arn).await?;
        }
        let names = match self.inline_names(p).await {
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        for (name, own) in self.quarantine_policies(p, &names).await? {
            if own {
                self.delete_inline(p, &name).await?;
            } else {
                info!(principal = %p.arn(), policy = %name, "not dormant's policy; left in place");
            }
        }
        Ok(())
    }
}

/// Whether a bulk read shows dormant's quarantine: its managed policy among `attached`, or an
/// earlier version's inline policy among `policies` (documents URL-encoded in
/// `GetAccountAuthorizationDetails`).
pub(super) fn bulk_has_own_quarantine(
    p: &Principal,
    policies: &[PolicyDetail],
    attached: &[AttachedPolicy],
) -> bool {
    let arn = quarantine::policy_arn_for(p);
    attached
        .iter()
        .any(|a| a.policy_arn() == Some(arn.as_str()))
        || policies.iter().any(|d| {
            d.policy_name().is_some_and(is_quarantine_name)
                && d.policy_document()
                    .and_then(|doc| decode_document("GetAccountAuthorizationDetails", doc).ok())
                    .is_some_and(|doc| quarantine::is_dormants(p, &doc))
        })
}
