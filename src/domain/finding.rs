//! What an inbound event nominates, in domain terms and independent of the EventBridge wire format
//! (docs/design.md, 'Event sources'). Events only *nominate*: the engine re-reads IAM and decides on fresh facts,
//! so nothing here is trusted beyond "look at this identity now".
//!
//! `crate::inbound::eventbridge` builds these; this module is pure data.

use serde::{Deserialize, Serialize};

use super::security_hub::HubFindingRef;
use super::subject::{
    is_access_key_id, Principal, PrincipalKind, Scope, Subject, DEFAULT_PARTITION,
};
use super::time::{fmt_time, Timestamp};

/// Which service nominated the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Config,
    AccessAnalyzer,
    SecurityHub,
    #[serde(rename = "cloudtrail")]
    CloudTrail,
    Schedule,
}

impl Source {
    /// The JSON name (`event classify` output, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::AccessAnalyzer => "access_analyzer",
            Source::SecurityHub => "security_hub",
            Source::CloudTrail => "cloudtrail",
            Source::Schedule => "schedule",
        }
    }
}

/// Who (or what) an event nominates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "nominee")]
pub enum Nominee {
    /// A role or user by name. `path` is known only when the event carried an ARN; IAM names are
    /// unique per account whatever the path, so the engine can always look the principal up.
    Principal {
        account: String,
        kind: PrincipalKind,
        path: Option<String>,
        name: String,
        scope: Scope,
    },
    /// AWS Config reports roles and users by unique id (`AROA…`/`AIDA…`): the engine resolves the
    /// name through IAM.
    UniqueId {
        account: String,
        kind: PrincipalKind,
        unique_id: String,
    },
    /// One access key of a user whose id the event does not carry (Access Analyzer
    /// `UnusedIAMUserAccessKey`): the engine gets it from `GetFindingV2`.
    AccessKeyOf {
        account: String,
        path: Option<String>,
        user: String,
    },
    /// Scheduled: evaluate every identity.
    Sweep,
    /// Scheduled: advance identities whose next step is due.
    Tick,
}

impl Nominee {
    /// The account the nominee lives in; `None` for scheduled work.
    pub fn account(&self) -> Option<&str> {
        match self {
            Nominee::Principal { account, .. }
            | Nominee::UniqueId { account, .. }
            | Nominee::AccessKeyOf { account, .. } => Some(account),
            Nominee::Sweep | Nominee::Tick => None,
        }
    }

    /// The ladder subject, when the event says enough to name it exactly (an ARN with its path).
    pub fn subject_in(&self, partition: &str) -> Option<Subject> {
        match self {
            Nominee::Principal {
                account,
                kind,
                path: Some(path),
                name,
                scope,
            } => Some(Subject {
                principal: Principal::new(account, *kind, path, name).in_partition(partition),
                scope: scope.clone(),
            }),
            _ => None,
        }
    }

    /// Human-readable identity: the subject id (ARN-based) when the path is known, else the
    /// CLI's `role/NAME`-style form; `None` for scheduled work.
    pub fn identity_in(&self, partition: &str) -> Option<String> {
        if let Some(subject) = self.subject_in(partition) {
            return Some(subject.id());
        }
        match self {
            Nominee::Principal {
                kind, name, scope, ..
            } => Some(match scope {
                Scope::Whole => format!("{}/{name}", kind.as_str()),
                Scope::AccessKey(key) => format!("{}/{name}/key/{key}", kind.as_str()),
                Scope::Password => format!("{}/{name}/password", kind.as_str()),
            }),
            Nominee::UniqueId {
                kind, unique_id, ..
            } => Some(format!("{} with unique id {unique_id}", kind.as_str())),
            Nominee::AccessKeyOf {
                account,
                path,
                user,
            } => Some(match path {
                Some(path) => format!(
                    "access key of {}",
                    Principal::user(account, path, user)
                        .in_partition(partition)
                        .arn()
                ),
                None => format!("access key of user/{user}"),
            }),
            Nominee::Sweep | Nominee::Tick => None,
        }
    }
}

/// One normalised nomination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub source: Source,
    /// The EventBridge event id (deduplication key).
    pub event_id: String,
    pub nominee: Nominee,
    /// What fired: a finding type, control, rule or API call (`UnusedIAMRole`, `IAM.8`,
    /// `iam-role-last-used`, `TagRole`, `sweep`).
    pub finding: String,
    /// One line for logs and the audit trail.
    pub reason: String,
    /// Access Analyzer finding id, for `GetFindingV2`.
    pub analyzer_finding_id: Option<String>,
    /// Access Analyzer analyzer ARN, for `GetFindingV2`.
    pub analyzer_arn: Option<String>,
    /// Last use the source reported. No EventBridge shape carries it today; enrichment fills it.
    pub observed_last_used: Option<Timestamp>,
    /// The account that sent the event (the envelope's `account`). Security Hub aggregates
    /// findings and any member may import one, so it need not be the nominee's account.
    #[serde(default)]
    pub sent_from: String,
    /// The partition of the event's region: the identities it names are in it.
    #[serde(default = "default_partition")]
    pub partition: String,
    /// A Security Hub (ASFF) finding's `Id` and `ProductArn`: dormant updates its workflow as
    /// the subject walks the ladder (`[security_hub]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_finding: Option<HubFindingRef>,
}

fn default_partition() -> String {
    DEFAULT_PARTITION.to_string()
}

/// What IAM Access Analyzer's `GetFindingV2` adds to an unused-access finding: the event carries
/// neither the access key id nor the last access.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedAccessDetails {
    /// The finding's resource (an IAM ARN), to check the details belong to the nominee.
    pub resource: Option<String>,
    /// `UnusedIamUserAccessKeyDetails.accessKeyId`.
    pub access_key_id: Option<String>,
    /// The latest `lastAccessed` in the details; `None` when never used or not reported.
    pub last_accessed: Option<Timestamp>,
}

impl Finding {
    /// The nominee as the reports name it, in the event's partition.
    pub fn identity(&self) -> Option<String> {
        self.nominee.identity_in(&self.partition)
    }

    /// The finding with `GetFindingV2`'s details folded in: a key finding is narrowed to the key
    /// the details name, and their last access is kept as what the source observed (recorded,
    /// never trusted: the engine still judges from IAM). `Err` says why the details were set aside.
    pub fn enriched(&self, details: &UnusedAccessDetails) -> Result<Finding, String> {
        let arn = match &self.nominee {
            Nominee::Principal {
                account,
                kind,
                path: Some(path),
                name,
                ..
            } => Some(
                Principal::new(account, *kind, path, name)
                    .in_partition(&self.partition)
                    .arn(),
            ),
            Nominee::AccessKeyOf {
                account,
                path: Some(path),
                user,
            } => Some(
                Principal::user(account, path, user)
                    .in_partition(&self.partition)
                    .arn(),
            ),
            _ => None,
        };
        if let (Some(theirs), Some(ours)) = (&details.resource, &arn) {
            if theirs != ours {
                return Err(format!(
                    "GetFindingV2 describes {theirs}, but the event nominated {ours}"
                ));
            }
        }
        let mut f = self.clone();
        f.observed_last_used = details.last_accessed;
        if let Nominee::AccessKeyOf {
            account,
            path,
            user,
        } = &self.nominee
        {
            match details.access_key_id.as_deref() {
                Some(key) if is_access_key_id(key) => {
                    f.nominee = Nominee::Principal {
                        account: account.clone(),
                        kind: PrincipalKind::User,
                        path: path.clone(),
                        name: user.clone(),
                        scope: Scope::AccessKey(key.to_string()),
                    };
                }
                Some(key) => {
                    return Err(format!(
                        "GetFindingV2 gave {key:?}, which is not an access key id"
                    ))
                }
                None => {}
            }
        }
        Ok(f)
    }

    /// The account the event came from, when it is not the identity's: said in the audit trail.
    pub fn sender_note(&self) -> Option<String> {
        let about = self.nominee.account()?;
        (!self.sent_from.is_empty() && self.sent_from != about).then(|| {
            format!(
                "event sent from account {} about account {about}",
                self.sent_from
            )
        })
    }

    /// One line for the audit trail on what an enriched Access Analyzer finding observed.
    pub fn observation(&self) -> Option<String> {
        if self.source != Source::AccessAnalyzer {
            return None;
        }
        let finding = self.analyzer_finding_id.as_deref()?;
        Some(match self.observed_last_used {
            Some(t) => format!(
                "IAM Access Analyzer finding {finding} reports last access {}",
                fmt_time(t)
            ),
            None => format!("IAM Access Analyzer finding {finding} reports no last access"),
        })
    }
}

/// The verdict on one event (or, for multi-finding events, one finding in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
// One per event, short-lived: boxing the candidate would buy nothing but indirection.
#[allow(clippy::large_enum_variant)]
pub enum Classification {
    /// Worth re-reading IAM for.
    Candidate(Finding),
    /// Well-formed but not ours (another rule, a passed check, an out-of-scope finding type).
    /// Acknowledged so that EventBridge does not retry.
    Ignored {
        source: Option<Source>,
        event_id: Option<String>,
        reason: String,
    },
    /// Malformed: logged with its id and returned as a non-retryable error.
    Invalid {
        source: Option<Source>,
        event_id: Option<String>,
        reason: String,
    },
}

impl Classification {
    /// `candidate`, `ignored` or `invalid`: the `outcome` field of `event classify`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Classification::Candidate(_) => "candidate",
            Classification::Ignored { .. } => "ignored",
            Classification::Invalid { .. } => "invalid",
        }
    }

    pub fn source(&self) -> Option<Source> {
        match self {
            Classification::Candidate(f) => Some(f.source),
            Classification::Ignored { source, .. } | Classification::Invalid { source, .. } => {
                *source
            }
        }
    }

    pub fn event_id(&self) -> Option<&str> {
        match self {
            Classification::Candidate(f) => Some(&f.event_id),
            Classification::Ignored { event_id, .. } | Classification::Invalid { event_id, .. } => {
                event_id.as_deref()
            }
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Classification::Candidate(f) => &f.reason,
            Classification::Ignored { reason, .. } | Classification::Invalid { reason, .. } => {
                reason
            }
        }
    }

    pub fn candidate(&self) -> Option<&Finding> {
        match self {
            Classification::Candidate(f) => Some(f),
            Classification::Ignored { .. } | Classification::Invalid { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        let role = Nominee::Principal {
            account: "123456789012".into(),
            kind: PrincipalKind::Role,
            path: Some("/ops/".into()),
            name: "deploy".into(),
            scope: Scope::Whole,
        };
        assert_eq!(
            role.identity_in("aws").as_deref(),
            Some("arn:aws:iam::123456789012:role/ops/deploy")
        );
        let key = Nominee::Principal {
            account: "123456789012".into(),
            kind: PrincipalKind::User,
            path: None,
            name: "alice".into(),
            scope: Scope::AccessKey("AKIAIOSFODNN7EXAMPLE".into()),
        };
        assert_eq!(
            key.identity_in("aws").as_deref(),
            Some("user/alice/key/AKIAIOSFODNN7EXAMPLE")
        );
        assert!(key.subject_in("aws").is_none());
        let id = Nominee::UniqueId {
            account: "123456789012".into(),
            kind: PrincipalKind::Role,
            unique_id: "AROAEXAMPLE".into(),
        };
        assert_eq!(
            id.identity_in("aws").as_deref(),
            Some("role with unique id AROAEXAMPLE")
        );
        assert_eq!(Nominee::Sweep.identity_in("aws"), None);
    }

    #[test]
    fn classifications_round_trip_through_json() {
        let c = Classification::Candidate(Finding {
            source: Source::SecurityHub,
            event_id: "e-1".into(),
            nominee: Nominee::Principal {
                account: "123456789012".into(),
                kind: PrincipalKind::User,
                path: None,
                name: "ci".into(),
                scope: Scope::AccessKey("AKIAIOSFODNN7EXAMPLE".into()),
            },
            finding: "IAM.22".into(),
            reason: "r".into(),
            analyzer_finding_id: None,
            analyzer_arn: None,
            observed_last_used: None,
            sent_from: String::new(),
            partition: "aws".into(),
            hub_finding: None,
        });
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["outcome"], "candidate");
        assert_eq!(j["nominee"]["nominee"], "principal");
        assert_eq!(serde_json::from_value::<Classification>(j).unwrap(), c);
        let i = Classification::Ignored {
            source: None,
            event_id: None,
            reason: "r".into(),
        };
        let j = serde_json::to_value(&i).unwrap();
        assert_eq!(serde_json::from_value::<Classification>(j).unwrap(), i);
    }

    fn key_finding() -> Finding {
        Finding {
            source: Source::AccessAnalyzer,
            event_id: "e-1".into(),
            nominee: Nominee::AccessKeyOf {
                account: "111122223333".into(),
                path: Some("/".into()),
                user: "ci".into(),
            },
            finding: "UnusedIAMUserAccessKey".into(),
            reason: "r".into(),
            analyzer_finding_id: Some("f-1".into()),
            analyzer_arn: Some("arn:aws:access-analyzer:us-east-1:111122223333:analyzer/a".into()),
            observed_last_used: None,
            sent_from: String::new(),
            partition: "aws".into(),
            hub_finding: None,
        }
    }

    #[test]
    fn get_finding_v2_details_narrow_a_key_finding_and_are_checked() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let details = UnusedAccessDetails {
            resource: Some("arn:aws:iam::111122223333:user/ci".into()),
            access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
            last_accessed: Some(t),
        };
        let f = key_finding().enriched(&details).unwrap();
        assert_eq!(
            f.nominee.identity_in("aws").as_deref(),
            Some("arn:aws:iam::111122223333:user/ci/key/AKIAIOSFODNN7EXAMPLE")
        );
        assert_eq!(f.observed_last_used, Some(t));
        assert_eq!(
            f.observation().as_deref(),
            Some("IAM Access Analyzer finding f-1 reports last access 2026-01-02T03:04:05Z")
        );

        let other = UnusedAccessDetails {
            resource: Some("arn:aws:iam::111122223333:user/someone-else".into()),
            ..details.clone()
        };
        assert!(key_finding().enriched(&other).is_err());
        let bad_key = UnusedAccessDetails {
            access_key_id: Some("ASIATEMPORARYCREDS1".into()),
            ..details.clone()
        };
        assert!(key_finding().enriched(&bad_key).is_err());
        // No key id: the nominee stays the user's keys; the date is still kept.
        let no_key = UnusedAccessDetails {
            access_key_id: None,
            ..details
        };
        let f = key_finding().enriched(&no_key).unwrap();
        assert_eq!(f.nominee, key_finding().nominee);
        assert_eq!(f.observed_last_used, Some(t));
    }

    #[test]
    fn source_names_match_serde() {
        for s in [
            Source::Config,
            Source::AccessAnalyzer,
            Source::SecurityHub,
            Source::CloudTrail,
            Source::Schedule,
        ] {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
    }
}
