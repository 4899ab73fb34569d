//! Snapshots: everything `restore` needs, read before a principal is torn down.

use std::collections::BTreeMap;

use aws_sdk_iam::types::{EncodingType, StatusType};

use super::{decode_document, missing, next_marker, to_chrono, AwsIam};
use crate::domain::{Principal, PrincipalKind, PublicCredential, Snapshot, Timestamp};
use crate::ports::PortResult;

impl AwsIam {
    pub(super) async fn snapshot_role(
        &self,
        p: &Principal,
        now: Timestamp,
    ) -> PortResult<Snapshot> {
        const OP: &str = "GetRole";
        let c = &self.client;
        let name = p.name.as_str();
        let out = self
            .call(OP, || c.get_role().role_name(name).send())
            .await?;
        let role = out.role().ok_or_else(|| missing(OP, "Role"))?;
        let mut inline_policies = BTreeMap::new();
        for policy in self.role_policy_names(name).await? {
            let doc = self
                .call("GetRolePolicy", || {
                    c.get_role_policy()
                        .role_name(name)
                        .policy_name(&policy)
                        .send()
                })
                .await?;
            let doc = decode_document("GetRolePolicy", doc.policy_document())?;
            inline_policies.insert(policy, doc);
        }
        Ok(Snapshot {
            principal: self.principal(PrincipalKind::Role, role.path(), role.role_name()),
            unique_id: Some(role.role_id().to_string()),
            taken_at: now,
            created_at: Some(to_chrono(OP, role.create_date())?),
            tags: self.role_tags(name).await?,
            description: role.description().map(str::to_string),
            max_session_duration: role.max_session_duration(),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            trust_policy: role
                .assume_role_policy_document()
                .map(|d| decode_document(OP, d))
                .transpose()?,
            inline_policies,
            attached_policy_arns: self.role_attached_arns(name).await?,
            groups: Vec::new(),
            instance_profiles: self.role_instance_profiles(name).await?,
            access_key_ids: Vec::new(),
            had_login_profile: false,
            ssh_public_keys: Vec::new(),
            signing_certificates: Vec::new(),
            service_specific_credentials: Vec::new(),
            mfa_devices: Vec::new(),
        })
    }

    pub(super) async fn snapshot_user(
        &self,
        p: &Principal,
        now: Timestamp,
    ) -> PortResult<Snapshot> {
        const OP: &str = "GetUser";
        let c = &self.client;
        let name = p.name.as_str();
        let out = self
            .call(OP, || c.get_user().user_name(name).send())
            .await?;
        let user = out.user().ok_or_else(|| missing(OP, "User"))?;
        let mut inline_policies = BTreeMap::new();
        for policy in self.user_policy_names(name).await? {
            let doc = self
                .call("GetUserPolicy", || {
                    c.get_user_policy()
                        .user_name(name)
                        .policy_name(&policy)
                        .send()
                })
                .await?;
            let doc = decode_document("GetUserPolicy", doc.policy_document())?;
            inline_policies.insert(policy, doc);
        }
        Ok(Snapshot {
            principal: self.principal(PrincipalKind::User, user.path(), user.user_name()),
            unique_id: Some(user.user_id().to_string()),
            taken_at: now,
            created_at: Some(to_chrono(OP, user.create_date())?),
            tags: self.user_tags(name).await?,
            description: None,
            max_session_duration: None,
            permissions_boundary: user
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            trust_policy: None,
            inline_policies,
            attached_policy_arns: self.user_attached_arns(name).await?,
            groups: self.user_groups(name).await?,
            instance_profiles: Vec::new(),
            access_key_ids: self
                .list_access_keys(name)
                .await?
                .iter()
                .filter_map(|k| k.access_key_id().map(str::to_string))
                .collect(),
            had_login_profile: self.login_profile_created(name).await?.is_some(),
            ssh_public_keys: self.ssh_public_keys(name).await?,
            signing_certificates: self.signing_certificates(name).await?,
            service_specific_credentials: self.service_specific_credentials(name).await?,
            mfa_devices: self.mfa_serials(name).await?,
        })
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
                (ids, next_marker(o.is_truncated, o.marker))
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
                (certs, next_marker(o.is_truncated, o.marker))
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
                (serials, next_marker(o.is_truncated, o.marker))
            },
        )
        .await
    }
}
