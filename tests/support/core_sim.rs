//! The decision core simulated in memory, for its story tests (`tests/ladder.rs`,
//! `tests/ladder_recreated.rs`, `tests/ladder_properties.rs`, `tests/exemptions.rs`): a tiny
//! account whose facts the effects of each decision are applied to, and a record committed the
//! way the engine does. No AWS, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dormant::domain::tag::{stage_tag_key, CREDENTIALS_TAG, WHOLE_STAGE_TAG};
use dormant::domain::{
    decide, AccessKey, Budget, Decision, Effect, Facts, Gate, LoginProfile, Policy, Principal,
    Record, Stage, Subject, Timestamp,
};

pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

pub const ACCOUNT: &str = "111122223333";
pub const KEY_A: &str = "AKIAAAAAAAAAAAAAAAAA";
pub const KEY_B: &str = "AKIABBBBBBBBBBBBBBBB";

/// Fixture builders that read like prose: `role("deploy").created(days(120)).build()`.
pub struct FactsBuilder {
    facts: Facts,
}

pub fn role(name: &str) -> FactsBuilder {
    FactsBuilder::new(Principal::role(ACCOUNT, "/", name))
}

pub fn role_at(path: &str, name: &str) -> FactsBuilder {
    FactsBuilder::new(Principal::role(ACCOUNT, path, name))
}

pub fn user(name: &str) -> FactsBuilder {
    FactsBuilder::new(Principal::user(ACCOUNT, "/", name))
}

impl FactsBuilder {
    fn new(principal: Principal) -> Self {
        FactsBuilder {
            facts: Facts {
                principal,
                unique_id: None,
                created_at: t0() - days(365),
                tags: BTreeMap::new(),
                role_last_used: None,
                password_last_used: None,
                login_profile: None,
                access_keys: Vec::new(),
                has_quarantine_policy: false,
                advisor_last_used: None,
                bulk: false,
            },
        }
    }

    /// Created `ago` before t0.
    pub fn created(mut self, ago: Duration) -> Self {
        self.facts.created_at = t0() - ago;
        self
    }

    /// The `RoleId`/`UserId` IAM gave this identity.
    pub fn unique_id(mut self, id: &str) -> Self {
        self.facts.unique_id = Some(id.to_string());
        self
    }

    pub fn role_used(mut self, ago: Duration) -> Self {
        self.facts.role_last_used = Some(t0() - ago);
        self
    }

    pub fn tag(mut self, k: &str, v: &str) -> Self {
        self.facts.tags.insert(k.to_string(), v.to_string());
        self
    }

    pub fn key(
        mut self,
        id: &str,
        active: bool,
        created_ago: Duration,
        used_ago: Option<Duration>,
    ) -> Self {
        self.facts.access_keys.push(AccessKey {
            id: id.into(),
            active,
            created_at: t0() - created_ago,
            last_used_at: used_ago.map(|d| t0() - d),
        });
        self
    }

    pub fn password(mut self, created_ago: Duration, used_ago: Option<Duration>) -> Self {
        self.facts.login_profile = Some(LoginProfile {
            created_at: t0() - created_ago,
        });
        self.facts.password_last_used = used_ago.map(|d| t0() - d);
        self
    }

    pub fn build(self) -> Facts {
        self.facts
    }
}

/// One subject in a simulated account.
pub struct World {
    pub facts: Option<Facts>,
    pub record: Record,
    pub policy: Policy,
    pub budget: Budget,
    /// Every effect carried out, in order.
    pub applied: Vec<Effect>,
}

impl World {
    pub fn new(facts: Facts, subject: Subject) -> Self {
        World {
            facts: Some(facts),
            record: Record::new(subject),
            policy: Policy::default(),
            budget: Budget::default(),
            applied: Vec::new(),
        }
    }

    pub fn whole(facts: Facts) -> Self {
        let subject = Subject::whole(facts.principal.clone());
        Self::new(facts, subject)
    }

    pub fn facts(&self) -> &Facts {
        self.facts.as_ref().expect("principal exists")
    }

    pub fn facts_mut(&mut self) -> &mut Facts {
        self.facts.as_mut().expect("principal exists")
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.facts().tags.get(key).map(String::as_str)
    }

    pub fn stage_tag(&self) -> Option<String> {
        let k = stage_tag_key(&self.record.subject);
        self.facts.as_ref()?.tags.get(&k).cloned()
    }

    pub fn key_active(&self, id: &str) -> bool {
        self.facts().access_key(id).expect("key exists").active
    }

    /// Runs one decision at `at` (an offset from t0) and, if it may act, applies its effects and
    /// commits the record, as the engine does.
    pub fn run(&mut self, at: Duration) -> Decision {
        self.run_at(t0() + at)
    }

    pub fn run_at(&mut self, now: DateTime<Utc>) -> Decision {
        let d = self.decide_at(now);
        self.commit(&d);
        d
    }

    /// The decision at `at` (an offset from t0), neither applied nor committed.
    pub fn decide(&self, at: Duration) -> Decision {
        self.decide_at(t0() + at)
    }

    pub fn decide_at(&self, now: DateTime<Utc>) -> Decision {
        decide(
            &self.record,
            self.facts.as_ref(),
            &self.policy,
            &self.budget,
            now,
        )
    }

    pub fn commit(&mut self, d: &Decision) {
        // A blocked step is a recorded failure in the engine: nothing called, nothing committed.
        if d.gate().is_some_and(|g| *g != Gate::Proceed) || d.blocked().is_some() {
            return;
        }
        if let Some(step) = d.step() {
            self.budget.record(step);
        }
        for e in d.effects() {
            self.apply(e);
        }
        if let Some(after) = d.after() {
            let mut after = after.clone();
            after.version = self.record.version + 1;
            self.record = after;
        }
    }

    fn apply(&mut self, effect: &Effect) {
        self.applied.push(effect.clone());
        let Some(f) = self.facts.as_mut() else { return };
        // As dormant's roles grant them (docs/design.md, 'Permissions'): keys turned on or off,
        // a key or password deleted, only on a user carrying `dormant:stage` or the credentials
        // marker.
        let guarded = matches!(
            effect,
            Effect::DeactivateKeys { .. }
                | Effect::ReactivateKeys { .. }
                | Effect::DeleteAccessKey { .. }
                | Effect::DeleteLoginProfile
        );
        assert!(
            !guarded
                || f.tags.contains_key(WHOLE_STAGE_TAG)
                || f.tags.contains_key(CREDENTIALS_TAG),
            "{effect:?} on an unmarked user: AccessDenied under dormant's roles ({:?})",
            f.tags
        );
        match effect {
            Effect::PutTags { tags } => {
                for (k, v) in tags {
                    f.tags.insert(k.clone(), v.clone());
                }
            }
            Effect::RemoveTags { keys } => {
                for k in keys {
                    f.tags.remove(k);
                }
            }
            Effect::PutQuarantinePolicy => f.has_quarantine_policy = true,
            Effect::DeleteQuarantinePolicy => f.has_quarantine_policy = false,
            Effect::DeactivateKeys { key_ids } => set_keys(f, key_ids, false),
            Effect::ReactivateKeys { key_ids } => set_keys(f, key_ids, true),
            Effect::TakeSnapshot => {}
            Effect::DeletePrincipal => self.facts = None,
            Effect::DeleteAccessKey { key_id } => f.access_keys.retain(|k| k.id != *key_id),
            Effect::DeleteLoginProfile => f.login_profile = None,
        }
    }
}

fn set_keys(f: &mut Facts, ids: &[String], active: bool) {
    for k in f
        .access_keys
        .iter_mut()
        .filter(|k| ids.iter().any(|id| k.id == *id))
    {
        k.active = active;
    }
}

pub fn stage_of(w: &World) -> Stage {
    w.record.stage
}
