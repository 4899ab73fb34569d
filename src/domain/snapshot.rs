//! What `restore` needs to recreate a deleted principal (DESIGN section 2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::facts::Timestamp;
use super::subject::Principal;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub principal: Principal,
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
}

/// What `restore` could and could not bring back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// What was recreated, one line each (e.g. "role deploy", "inline policy read", "tag team").
    pub restored: Vec<String>,
    /// What cannot be recreated, and why (access keys, passwords) or what failed.
    pub not_restored: Vec<String>,
}
