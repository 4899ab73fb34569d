//! What IAM says about a principal right now, in domain terms. The adapters fill these from
//! `GetAccountAuthorizationDetails` + the credential report (sweeps) or single reads (before a step).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::subject::{Principal, PrincipalKind, Scope};

pub type Timestamp = DateTime<Utc>;

/// `2026-01-31T12:00:00Z`: the one format for times in reasons, tags and output.
pub fn fmt_time(t: Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub principal: Principal,
    pub created_at: Timestamp,
    pub tags: BTreeMap<String, String>,
    /// Roles: `RoleLastUsed.LastUsedDate`.
    pub role_last_used: Option<Timestamp>,
    /// Users: `PasswordLastUsed` (kept by IAM even after the login profile is gone).
    pub password_last_used: Option<Timestamp>,
    /// Users: the login profile, if the user has a console password.
    pub login_profile: Option<LoginProfile>,
    /// Users: every access key, active or not.
    pub access_keys: Vec<AccessKey>,
    /// Whether dormant's `DormantQuarantineDenyAll` inline policy is attached.
    pub has_quarantine_policy: bool,
    /// Optional confirmation from Access Advisor: the most recent `LastAuthenticated`.
    pub advisor_last_used: Option<Timestamp>,
    /// Read in bulk: access-key ids are placeholders. Never act on bulk facts.
    pub bulk: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub active: bool,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// Which fact the last activity came from; shown to users as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source", content = "key_id")]
pub enum Evidence {
    RoleLastUsed,
    PasswordLastUsed,
    AccessKeyLastUsed(String),
    AccessAdvisor,
    /// Never used: the clock runs from creation.
    Created,
}

impl Evidence {
    pub fn describe(&self) -> String {
        match self {
            Evidence::RoleLastUsed => "RoleLastUsed".to_string(),
            Evidence::PasswordLastUsed => "PasswordLastUsed".to_string(),
            Evidence::AccessKeyLastUsed(k) => format!("AccessKeyLastUsed({k})"),
            Evidence::AccessAdvisor => "Access Advisor".to_string(),
            Evidence::Created => "never used (CreateDate)".to_string(),
        }
    }
}

/// The last sign of life of one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The instant inactivity counts from.
    pub since: Timestamp,
    pub evidence: Evidence,
    /// The last real use, if there ever was one (`None` for never used).
    pub last_used_at: Option<Timestamp>,
}

impl Activity {
    fn used(at: Timestamp, evidence: Evidence) -> Self {
        Activity {
            since: at,
            evidence,
            last_used_at: Some(at),
        }
    }

    fn never_used(created: Timestamp) -> Self {
        Activity {
            since: created,
            evidence: Evidence::Created,
            last_used_at: None,
        }
    }
}

impl Facts {
    /// The latest of `PasswordLastUsed` and every key's last use. A credential that was never used
    /// counts from its creation: a key issued last week is not 90 days unused, whatever the
    /// user's age.
    fn user_activity(&self) -> Activity {
        let mut activity = Activity::never_used(self.created_at);
        let mut consider = |candidate: Activity| {
            if candidate.since > activity.since {
                let last_used_at = activity.last_used_at.max(candidate.last_used_at);
                activity = Activity {
                    last_used_at,
                    ..candidate
                };
            } else {
                activity.last_used_at = activity.last_used_at.max(candidate.last_used_at);
            }
        };
        if let Some(t) = self.password_last_used {
            consider(Activity::used(t, Evidence::PasswordLastUsed));
        }
        if let Some(profile) = &self.login_profile {
            consider(Activity::never_used(profile.created_at));
        }
        for key in &self.access_keys {
            consider(match key.last_used_at {
                Some(t) => Activity::used(t, Evidence::AccessKeyLastUsed(key.id.clone())),
                None => Activity::never_used(key.created_at),
            });
        }
        activity
    }

    pub fn access_key(&self, id: &str) -> Option<&AccessKey> {
        self.access_keys.iter().find(|k| k.id == id)
    }

    pub fn active_key_ids(&self) -> Vec<String> {
        self.access_keys
            .iter()
            .filter(|k| k.active)
            .map(|k| k.id.clone())
            .collect()
    }

    /// Last activity of the scope, or `None` when the credential no longer exists.
    /// Roles: `RoleLastUsed`, else creation. Users: the latest of `PasswordLastUsed` and every key's
    /// last use, else creation. Access Advisor, when present, can only move the date later.
    pub fn activity(&self, scope: &Scope) -> Option<Activity> {
        let own = match scope {
            Scope::Whole => match self.principal.kind {
                PrincipalKind::Role => match self.role_last_used {
                    Some(t) => Activity::used(t, Evidence::RoleLastUsed),
                    None => Activity::never_used(self.created_at),
                },
                PrincipalKind::User => self.user_activity(),
            },
            Scope::AccessKey(id) => {
                let key = self.access_key(id)?;
                match key.last_used_at {
                    Some(t) => Activity::used(t, Evidence::AccessKeyLastUsed(key.id.clone())),
                    None => Activity::never_used(key.created_at),
                }
            }
            Scope::Password => {
                let profile = self.login_profile.as_ref()?;
                match self.password_last_used {
                    // A password set again after its last use starts a new clock.
                    Some(t) if t >= profile.created_at => {
                        Activity::used(t, Evidence::PasswordLastUsed)
                    }
                    _ => Activity::never_used(profile.created_at),
                }
            }
        };
        Some(match (scope, self.advisor_last_used) {
            (Scope::Whole, Some(t)) if t > own.since => Activity::used(t, Evidence::AccessAdvisor),
            _ => own,
        })
    }
}
