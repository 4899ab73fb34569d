//! Snapshots: everything `restore` needs, read before a principal is torn down.

use std::collections::BTreeMap;

use aws_sdk_iam::types::{EncodingType, StatusType};

use super::twin::Identity;
use super::{decode_document, missing, AwsIam};
use crate::domain::{Principal, PublicCredential, Snapshot, Timestamp};
use crate::ports::PortResult;

impl AwsIam {
    /// What both kinds have (the identity, inline and managed policies, tags), then what only
    /// a role or only a user has.
    pub(super) async fn take_snapshot(
        &self,
        p: &Principal,
        now: Timestamp,
    ) -> PortResult<Snapshot> {
        let identity = self.identity(p.kind, &p.name).await?;
        let mut inline_policies = BTreeMap::new();
        for policy in self.inline_names(p).await? {
            let doc = self.inline_document(p, &policy).await?;
            inline_policies.insert(policy, doc);
        }
        let mut s = Snapshot {
            principal: self.principal(p.kind, identity.path(), identity.name()),
            unique_id: Some(identity.unique_id().to_string()),
            taken_at: now,
            created_at: Some(identity.created_at()?),
            tags: self.listed_tags(p).await?,
            description: None,
            max_session_duration: None,
            permissions_boundary: identity.permissions_boundary().map(str::to_string),
            trust_policy: None,
            inline_policies,
            attached_policy_arns: self.attached_arns(p).await?,
            groups: Vec::new(),
            instance_profiles: Vec::new(),
            access_key_ids: Vec::new(),
            had_login_profile: false,
            ssh_public_keys: Vec::new(),
            signing_certificates: Vec::new(),
            service_specific_credentials: Vec::new(),
            mfa_devices: Vec::new(),
        };
        let name = p.name.as_str();
        match &identity {
            Identity::Role(role) => {
                s.description = role.description().map(str::to_string);
                s.max_session_duration = role.max_session_duration();
                s.trust_policy = role
                    .assume_role_policy_document()
                    .map(|d| decode_document("GetRole", d))
                    .transpose()?;
                s.instance_profiles = self.role_instance_profiles(name).await?;
            }
            Identity::User(_) => {
                s.groups = self.user_groups(name).await?;
                s.access_key_ids = self
                    .list_access_keys(name)
                    .await?
                    .iter()
                    .filter_map(|k| k.access_key_id().map(str::to_string))
                    .collect();
                s.had_login_profile = self.login_profile_created(name).await?.is_some();
                s.ssh_public_keys = self.ssh_public_keys(name).await?;
                s.signing_certificates = self.signing_certificates(name).await?;
                s.service_specific_credentials = self.service_specific_credentials(name).await?;
                s.mfa_devices = self.mfa_serials(name).await?;
            }
        }
        Ok(s)
    }

    /// A user's SSH public keys with their bodies. The listing has ids and status only; the body
    /// takes one `GetSSHPublicKey` each (IAM allows five keys per user).
    pub(super) async fn ssh_public_keys(&self, user: &str) -> PortResult<Vec<PublicCredential>> {
        const OP: &str = "GetSSHPublicKey";
        let c = &self.client;
        let ids = self.ssh_public_key_ids(user).await?;
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            let out = self
                .call(OP, || {
                    c.get_ssh_public_key()
                        .user_name(user)
                        .ssh_public_key_id(&id)
                        .encoding(EncodingType::Ssh)
                        .send()
                })
                .await?;
            let key = out
                .ssh_public_key()
                .ok_or_else(|| missing(OP, "SSHPublicKey"))?;
            keys.push(PublicCredential {
                id,
                body: key.ssh_public_key_body().to_string(),
                active: key.status() == &StatusType::Active,
            });
        }
        Ok(keys)
    }

    /// The ids of a user's SSH public keys (the listing has ids and status only).
    pub(super) async fn ssh_public_key_ids(&self, user: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListSSHPublicKeys",
            |m| {
                c.list_ssh_public_keys()
                    .user_name(user)
                    .set_marker(m)
                    .send()
            },
            |o| {
                let ids = o
                    .ssh_public_keys
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| k.ssh_public_key_id)
                    .collect();
                (ids, o.is_truncated, o.marker)
            },
        )
        .await
    }

    /// A user's signing certificates; the listing carries their bodies.
    pub(super) async fn signing_certificates(
        &self,
        user: &str,
    ) -> PortResult<Vec<PublicCredential>> {
        let c = &self.client;
        self.paged(
            "ListSigningCertificates",
            |m| {
                c.list_signing_certificates()
                    .user_name(user)
                    .set_marker(m)
                    .send()
            },
            |o| {
                let certs = o
                    .certificates
                    .into_iter()
                    .map(|cert| PublicCredential {
                        active: cert.status() == &StatusType::Active,
                        id: cert.certificate_id,
                        body: cert.certificate_body,
                    })
                    .collect();
                (certs, o.is_truncated, o.marker)
            },
        )
        .await
    }

    /// Serial numbers (ARNs for virtual devices) of a user's MFA devices.
    pub(super) async fn mfa_serials(&self, user: &str) -> PortResult<Vec<String>> {
        let c = &self.client;
        self.paged(
            "ListMFADevices",
            |m| c.list_mfa_devices().user_name(user).set_marker(m).send(),
            |o| {
                let serials = o.mfa_devices.into_iter().map(|d| d.serial_number).collect();
                (serials, o.is_truncated, o.marker)
            },
        )
        .await
    }
}
