//! What IAM says about a principal right now, in domain terms. The adapters fill these from
//! `GetAccountAuthorizationDetails` + the credential report (sweeps) or single reads (before a step).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key_id::KeyId;
use super::subject::{Principal, PrincipalKind, Scope};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub principal: Principal,
    /// `RoleId` (`AROA…`) or `UserId` (`AIDA…`): a name can be deleted and created again, this
    /// id is never reused. `None` when the read did not give it.
    #[serde(default)]
    pub unique_id: Option<String>,
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
    /// Whether dormant's own quarantine policy is attached, under either of its names and
    /// recognised by its document (`domain::quarantine`); an operator's policy that only shares
    /// the name does not count.
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
    pub id: KeyId,
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
    AccessKeyLastUsed(KeyId),
    AccessAdvisor,
    /// Never used: the clock runs from creation.
    Created,
}

impl Evidence {
    pub fn describe(&self) -> String {
        match self {
            Evidence::RoleLastUsed => "RoleLastUsed".to_string(),
            Evidence::PasswordLastUsed => "PasswordLastUsed".to_string(),
            // Bulk reads know keys only by their credential-report column.
            Evidence::AccessKeyLastUsed(KeyId::Slot(n)) => {
                format!("AccessKeyLastUsed(credential report access_key_{n})")
            }
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

    /// Whether some access key still carries a credential-report slot instead of its id.
    pub fn has_slot_keys(&self) -> bool {
        self.access_keys.iter().any(|k| k.id.is_slot())
    }

    /// These bulk facts with each slot key (`slot1`, `slot2`) given its id from `listed`
    /// (`ListAccessKeys`): the key created in the same second with the same status. `None`
    /// when a slot matches no key or several (two keys created in one second), or the user
    /// has keys the report did not show: then only a full read will do.
    pub fn with_key_ids(&self, listed: &[AccessKey]) -> Option<Facts> {
        if listed.len() != self.access_keys.len() {
            return None;
        }
        let mut facts = self.clone();
        let mut taken = Vec::new();
        for key in facts.access_keys.iter_mut().filter(|k| k.id.is_slot()) {
            let mut matches = listed.iter().filter(|l| {
                l.created_at.timestamp() == key.created_at.timestamp() && l.active == key.active
            });
            let (Some(found), None) = (matches.next(), matches.next()) else {
                return None;
            };
            if taken.contains(&found.id) {
                return None;
            }
            taken.push(found.id.clone());
            key.id = found.id.clone();
        }
        Some(facts)
    }

    pub fn access_key(&self, id: &str) -> Option<&AccessKey> {
        self.access_keys.iter().find(|k| k.id == *id)
    }

    pub fn active_key_ids(&self) -> Vec<String> {
        self.access_keys
            .iter()
            .filter(|k| k.active)
            .map(|k| k.id.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(secs: i64) -> Timestamp {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn key(id: &str, active: bool, created: Timestamp) -> AccessKey {
        AccessKey {
            id: id.into(),
            active,
            created_at: created,
            last_used_at: None,
        }
    }

    fn bulk(keys: Vec<AccessKey>) -> Facts {
        Facts {
            principal: Principal::user("123456789012", "/", "u"),
            unique_id: None,
            created_at: at(0),
            tags: BTreeMap::new(),
            role_last_used: None,
            password_last_used: None,
            login_profile: None,
            access_keys: keys,
            has_quarantine_policy: false,
            advisor_last_used: None,
            bulk: true,
        }
    }

    #[test]
    fn slots_take_the_ids_of_the_keys_created_in_the_same_second_with_the_same_status() {
        let mut used = key("slot2", true, at(50));
        used.last_used_at = Some(at(90));
        let facts = bulk(vec![key("slot1", false, at(10)), used]);
        // ListAccessKeys has sub-second dates on some backends; the report has seconds.
        let listed = vec![
            key("AKIAB", true, at(50) + chrono::Duration::milliseconds(400)),
            key("AKIAA", false, at(10)),
        ];
        let mapped = facts.with_key_ids(&listed).unwrap();
        assert!(!mapped.has_slot_keys());
        assert_eq!(mapped.access_keys[0].id, "AKIAA");
        assert_eq!(mapped.access_keys[1].id, "AKIAB");
        assert_eq!(
            mapped.access_keys[1].last_used_at,
            Some(at(90)),
            "the report's last use is kept"
        );
    }

    #[test]
    fn evidence_names_a_report_slot_by_its_column_and_a_key_by_its_id() {
        assert_eq!(
            Evidence::AccessKeyLastUsed("slot2".into()).describe(),
            "AccessKeyLastUsed(credential report access_key_2)"
        );
        assert_eq!(
            Evidence::AccessKeyLastUsed("AKIAEXAMPLE".into()).describe(),
            "AccessKeyLastUsed(AKIAEXAMPLE)"
        );
    }

    #[test]
    fn evidence_is_stored_as_before_keys_were_typed() {
        for (evidence, json) in [
            (
                Evidence::AccessKeyLastUsed(KeyId::Slot(1)),
                r#"{"source":"access_key_last_used","key_id":"slot1"}"#,
            ),
            (
                Evidence::AccessKeyLastUsed(KeyId::Id("AKIAEXAMPLE".into())),
                r#"{"source":"access_key_last_used","key_id":"AKIAEXAMPLE"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&evidence).unwrap(), json);
            assert_eq!(serde_json::from_str::<Evidence>(json).unwrap(), evidence);
        }
    }

    #[test]
    fn ambiguous_or_missing_keys_give_no_mapping() {
        let twins = bulk(vec![key("slot1", true, at(10)), key("slot2", true, at(10))]);
        let listed = vec![key("AKIAA", true, at(10)), key("AKIAB", true, at(10))];
        assert_eq!(
            twins.with_key_ids(&listed),
            None,
            "same second, same status"
        );

        let one = bulk(vec![key("slot1", true, at(10))]);
        assert_eq!(one.with_key_ids(&[]), None, "deleted since the report");
        assert_eq!(
            one.with_key_ids(&[key("AKIAA", true, at(10)), key("AKIAC", true, at(70))]),
            None,
            "created since the report"
        );
        assert_eq!(
            one.with_key_ids(&[key("AKIAA", false, at(10))]),
            None,
            "deactivated since the report"
        );
    }
}
