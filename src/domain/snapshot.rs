//! What `restore` needs to recreate a deleted principal (docs/design.md, 'Steps in flight'), and what it may and
//! may not recreate it onto.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quarantine::{is_dormants, is_quarantine_name, policy_arn_for};
use super::subject::Principal;
use super::tag::{is_progress_tag, RESTORED_FROM_TAG, TAG_LIMIT};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub principal: Principal,
    /// `RoleId`/`UserId` of the identity the snapshot is of. `None` in snapshots taken before
    /// dormant recorded it.
    #[serde(default)]
    pub unique_id: Option<String>,
    pub taken_at: Timestamp,
    pub created_at: Option<Timestamp>,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
    pub max_session_duration: Option<i32>,
    pub permissions_boundary: Option<String>,
    /// Roles: the trust policy, decoded JSON text.
    pub trust_policy: Option<String>,
    /// Inline policy name → document (decoded JSON text).
    pub inline_policies: BTreeMap<String, String>,
    pub attached_policy_arns: Vec<String>,
    /// Users: group names.
    pub groups: Vec<String>,
    /// Roles: instance profile names.
    pub instance_profiles: Vec<String>,
    /// Users: key ids that existed (keys cannot be recreated).
    pub access_key_ids: Vec<String>,
    /// Users: whether a console password existed (passwords cannot be recreated).
    pub had_login_profile: bool,
    /// Users: SSH public keys (for CodeCommit); public material, uploaded again by `restore`.
    #[serde(default)]
    pub ssh_public_keys: Vec<PublicCredential>,
    /// Users: X.509 signing certificates; public material, uploaded again by `restore`.
    #[serde(default)]
    pub signing_certificates: Vec<PublicCredential>,
    /// Users: service-specific credentials (their passwords cannot be recreated).
    #[serde(default)]
    pub service_specific_credentials: Vec<ServiceCredential>,
    /// Users: serial numbers of MFA devices (a device's seed cannot be read back).
    #[serde(default)]
    pub mfa_devices: Vec<String>,
}

/// An SSH public key (its body in OpenSSH format, as `GetSSHPublicKey` with `Encoding=SSH` gives
/// it) or an X.509 signing certificate (PEM): public material IAM takes again as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicCredential {
    pub id: String,
    pub body: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCredential {
    pub id: String,
    /// e.g. `codecommit.amazonaws.com`.
    pub service: String,
}

/// The identity found holding the snapshot's name when `restore` tried to create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameHolder {
    pub unique_id: String,
    pub tags: BTreeMap<String, String>,
    pub path: String,
    pub created_at: Option<Timestamp>,
}

/// Whose the identity holding the name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The very identity of the snapshot (same unique id): it was never deleted.
    Original,
    /// Created by an earlier, interrupted `restore` from this same snapshot.
    EarlierRestore,
    /// Anyone else's: restoring onto it would hand it the deleted identity's access.
    Stranger,
}

impl Snapshot {
    /// The value of [`RESTORED_FROM_TAG`] for a restore from this snapshot: the deleted
    /// identity's unique id and the snapshot's time to the microsecond. Unique ids are never
    /// reused, and the exact time is only in dormant's table, so an identity created by someone
    /// else does not carry it by accident.
    pub fn restore_marker(&self) -> String {
        format!(
            "{}@{}",
            self.unique_id.as_deref().unwrap_or("unknown"),
            self.taken_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        )
    }

    /// Who `holder` is. Only [`Holder::Stranger`] stops a restore.
    pub fn holder(&self, holder: &NameHolder) -> Holder {
        if self.unique_id.as_deref() == Some(holder.unique_id.as_str()) {
            return Holder::Original;
        }
        let marker = self.restore_marker();
        // The exact key only: the spelling the SCP keeps to security admins. And an identity a
        // restore of this snapshot created has its path and was created after the snapshot.
        let ours = holder
            .tags
            .iter()
            .any(|(k, v)| k == RESTORED_FROM_TAG && *v == marker)
            && holder.path == self.principal.path
            && holder.created_at.is_some_and(|t| t >= self.taken_at);
        if ours {
            Holder::EarlierRestore
        } else {
            Holder::Stranger
        }
    }

    /// The owner's tags: the snapshot's minus dormant's own (stage tags and an earlier restore's
    /// marker). The owner's `dormant:exempt*` tags are kept.
    pub fn owner_tags(&self) -> BTreeMap<String, String> {
        self.tags
            .iter()
            .filter(|(k, _)| !is_progress_tag(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The tags `CreateRole`/`CreateUser` sets: the owner's and the restore marker, unless the
    /// owner's already fill IAM's limit (then an interrupted restore cannot be told from a
    /// stranger and a rerun refuses: safe, if less convenient).
    pub fn creation_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.owner_tags();
        if tags.len() < TAG_LIMIT {
            tags.insert(RESTORED_FROM_TAG.to_string(), self.restore_marker());
        }
        tags
    }

    /// The owner's inline policies: dormant's quarantine policy stays out; an operator's policy
    /// that only shares its name is the owner's.
    pub fn owner_inline_policies(&self) -> impl Iterator<Item = (&String, &String)> {
        self.inline_policies
            .iter()
            .filter(|(name, doc)| !(is_quarantine_name(name) && is_dormants(&self.principal, doc)))
    }

    /// The owner's managed policies: dormant's quarantine policy stays out (restore gives the
    /// identity back as it was before dormant).
    pub fn owner_attached_policies(&self) -> impl Iterator<Item = &String> {
        let own = policy_arn_for(&self.principal);
        self.attached_policy_arns
            .iter()
            .filter(move |arn| **arn != own)
    }

    /// What IAM cannot give back, one line each with why: the secrets only AWS ever held.
    pub fn not_restorable(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .access_key_ids
            .iter()
            .map(|id| format!("access key {id}: secret keys cannot be recreated; create a new key"))
            .collect();
        if self.had_login_profile {
            lines.push("console password: cannot be recreated; set a new one".to_string());
        }
        lines.extend(self.service_specific_credentials.iter().map(|c| {
            format!(
                "service-specific credential {} ({}): its password cannot be recovered; create a new one",
                c.id, c.service
            )
        }));
        lines.extend(self.mfa_devices.iter().map(|serial| {
            format!(
                "MFA device {serial}: its secret seed cannot be read back; enrol a device again"
            )
        }));
        lines
    }
}

/// What `restore` could and could not bring back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The `RoleId`/`UserId` of the restored identity (a new one: IAM never reuses them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// What was recreated, one line each (e.g. "role deploy", "inline policy read", "tag team").
    pub restored: Vec<String>,
    /// What cannot be recreated, and why (access keys, passwords) or what failed.
    pub not_restored: Vec<String>,
}

/// The end of a `restore` in IAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    Restored(RestoreReport),
    /// Another identity holds the name (see [`Holder::Stranger`]); nothing was changed.
    NameTaken {
        unique_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn snapshot() -> Snapshot {
        Snapshot {
            principal: Principal::role("111122223333", "/", "app"),
            unique_id: Some("AROAOLDOLDOLDOLDOLDOL".into()),
            taken_at: DateTime::parse_from_rfc3339("2025-01-01T10:20:30.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            created_at: None,
            tags: BTreeMap::new(),
            description: None,
            max_session_duration: None,
            permissions_boundary: None,
            trust_policy: None,
            inline_policies: BTreeMap::new(),
            attached_policy_arns: vec![],
            groups: vec![],
            instance_profiles: vec![],
            access_key_ids: vec![],
            had_login_profile: false,
            ssh_public_keys: vec![],
            signing_certificates: vec![],
            service_specific_credentials: vec![],
            mfa_devices: vec![],
        }
    }

    fn holder(id: &str, tags: &[(&str, &str)]) -> NameHolder {
        let s = snapshot();
        NameHolder {
            unique_id: id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            path: s.principal.path.clone(),
            created_at: Some(s.taken_at + chrono::Duration::minutes(1)),
        }
    }

    #[test]
    fn a_marked_identity_elsewhere_or_older_than_the_snapshot_is_a_strangers() {
        let s = snapshot();
        let marker = s.restore_marker();
        let mut moved = holder("AROANEW", &[(RESTORED_FROM_TAG, &marker)]);
        moved.path = "/elsewhere/".into();
        assert_eq!(s.holder(&moved), Holder::Stranger);
        let mut older = holder("AROANEW", &[(RESTORED_FROM_TAG, &marker)]);
        older.created_at = Some(s.taken_at - chrono::Duration::days(1));
        assert_eq!(s.holder(&older), Holder::Stranger);
    }

    #[test]
    fn the_marker_names_the_identity_and_the_snapshot_time() {
        let s = snapshot();
        assert_eq!(
            s.restore_marker(),
            "AROAOLDOLDOLDOLDOLDOL@2025-01-01T10:20:30.123456Z"
        );
        // Only characters IAM allows in tag values.
        assert!(s
            .restore_marker()
            .chars()
            .all(|c| c.is_alphanumeric() || "_.:/=+-@ ".contains(c)));
        let mut old = s.clone();
        old.unique_id = None;
        assert_eq!(old.restore_marker(), "unknown@2025-01-01T10:20:30.123456Z");
    }

    #[test]
    fn only_the_original_or_an_identity_marked_from_this_snapshot_is_ours() {
        let s = snapshot();
        let marker = s.restore_marker();
        assert_eq!(
            s.holder(&holder("AROAOLDOLDOLDOLDOLDOL", &[])),
            Holder::Original
        );
        assert_eq!(
            s.holder(&holder("AROANEW", &[(RESTORED_FROM_TAG, &marker)])),
            Holder::EarlierRestore
        );
        for tags in [
            vec![],
            // Not the spelling the SCP guards: anyone could have written it.
            vec![("Dormant:Restored-From", marker.as_str())],
            vec![("team", "someone else")],
            // A restore from another snapshot of the same identity is not this one.
            vec![(
                RESTORED_FROM_TAG,
                "AROAOLDOLDOLDOLDOLDOL@2024-01-01T00:00:00.000000Z",
            )],
            vec![("dormant:restored-from-x", marker.as_str())],
        ] {
            assert_eq!(
                s.holder(&holder("AROANEW", &tags)),
                Holder::Stranger,
                "{tags:?}"
            );
        }
        // Without a recorded unique id, nobody is the original.
        let mut old = s.clone();
        old.unique_id = None;
        assert_eq!(
            old.holder(&holder("AROAOLDOLDOLDOLDOLDOL", &[])),
            Holder::Stranger
        );
    }

    #[test]
    fn creation_tags_are_the_owners_plus_the_marker_while_there_is_room() {
        let mut s = snapshot();
        for (k, v) in [
            ("team", "data"),
            ("dormant:exempt-reason", "owner's"),
            ("dormant:stage", "pending_delete"),
            ("dormant:key:AKIA1:stage", "noticed"),
            ("dormant:password:stage", "noticed"),
            // An earlier restore's marker is replaced, not kept next to the new one.
            (
                "Dormant:Restored-From",
                "AROAOLDER@2020-01-01T00:00:00.000000Z",
            ),
        ] {
            s.tags.insert(k.into(), v.into());
        }
        let tags = s.creation_tags();
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            vec![
                ("dormant:exempt-reason".into(), "owner's".into()),
                (RESTORED_FROM_TAG.into(), s.restore_marker()),
                ("team".into(), "data".into()),
            ]
        );
        let mut full = snapshot();
        for i in 0..TAG_LIMIT {
            full.tags.insert(format!("t{i}"), "v".into());
        }
        assert_eq!(full.creation_tags(), full.owner_tags());
        assert_eq!(full.creation_tags().len(), TAG_LIMIT);
    }

    #[test]
    fn everything_that_cannot_come_back_is_named_with_why() {
        let mut s = snapshot();
        s.access_key_ids = vec!["AKIA1".into()];
        s.had_login_profile = true;
        s.service_specific_credentials = vec![ServiceCredential {
            id: "ACCA1".into(),
            service: "codecommit.amazonaws.com".into(),
        }];
        s.mfa_devices = vec!["arn:aws:iam::111122223333:mfa/app".into()];
        // Public material is restorable and not listed.
        s.ssh_public_keys = vec![PublicCredential {
            id: "APKA1".into(),
            body: "ssh-rsa AAAA".into(),
            active: true,
        }];
        assert_eq!(
            s.not_restorable(),
            vec![
                "access key AKIA1: secret keys cannot be recreated; create a new key",
                "console password: cannot be recreated; set a new one",
                "service-specific credential ACCA1 (codecommit.amazonaws.com): its password cannot be recovered; create a new one",
                "MFA device arn:aws:iam::111122223333:mfa/app: its secret seed cannot be read back; enrol a device again",
            ]
        );
    }

    #[test]
    fn snapshots_stored_before_these_fields_still_read() {
        let mut v = serde_json::to_value(snapshot()).unwrap();
        let obj = v.as_object_mut().unwrap();
        for field in [
            "unique_id",
            "ssh_public_keys",
            "signing_certificates",
            "service_specific_credentials",
            "mfa_devices",
        ] {
            obj.remove(field);
        }
        let old: Snapshot = serde_json::from_value(v).unwrap();
        assert_eq!(old.unique_id, None);
        assert!(old.ssh_public_keys.is_empty() && old.mfa_devices.is_empty());
    }
}
