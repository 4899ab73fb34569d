#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the chaos schedule is relative to one shared instant
//! The chaos suite's emulated world (`tests/chaos.rs`, also `tests/hostile_input.rs`): one
//! [`Account`] with identities built and backdated in it, an engine wired the way the Lambda
//! wires it (IAM, DynamoDB, EventBridge), a request log kept across clears, a seeded PRNG, a
//! simulated crash, and a normalised dump of everything dormant can change, so that two runs in
//! two accounts can be compared.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration as StdDuration;

use aws_sdk_iam::types::Tag;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::events::EventBridgePublisher;
use dormant::adapters::iam::AwsIam;
use dormant::adapters::retry::RetryPolicy;
use dormant::app::fleet::Fleet;
use dormant::domain::{Policy, Record};
use dormant::ports::Store;
use serde_json::{json, Value};

use super::account::{steps_done, Account, TestEngine};
use super::emulator::{emulator, Fault};

pub type DormantFleet = Fleet<AwsIam, DynamoStore>;

/// One wall-clock instant shared by every run of a test binary, so that two accounts built
/// minutes apart still have identical (backdated) dates and the same simulated schedule.
pub fn t0() -> DateTime<Utc> {
    static T0: OnceLock<DateTime<Utc>> = OnceLock::new();
    *T0.get_or_init(|| Utc::now().trunc_subsecs(0))
}

/// Whether an IAM operation changes something (the brief's list: Tag*, Untag*, Put*Policy,
/// Delete*, Update*, Remove*, Detach*, Deactivate*, Create*, plus Attach*/Add*/Enable*).
pub fn is_mutating(operation: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "Tag",
        "Untag",
        "Delete",
        "Update",
        "Remove",
        "Detach",
        "Deactivate",
        "Create",
        "Attach",
        "Add",
        "Enable",
        "Upload",
        "Reset",
        "Set",
        "Change",
    ];
    (operation.starts_with("Put") && operation.ends_with("Policy"))
        || PREFIXES.iter().any(|p| operation.starts_with(p))
}

/// splitmix64: tiny, seedable and good enough to pick faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }
}

/// A fresh emulated account with dormant's table ([`Account`], which it derefs to), and
/// everything needed to build identities in it and compare it with another account afterwards.
pub struct World {
    account: Account,
    /// Access-key id → the test's label for it (ids are random per account).
    keys: Mutex<BTreeMap<String, String>>,
    /// Requests already drained from the emulator's log.
    log: Mutex<Vec<Value>>,
}

impl Deref for World {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.account
    }
}

impl World {
    pub async fn new() -> Self {
        World {
            account: Account::at(t0()).await,
            keys: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
        }
    }

    /// `t0 + day days + hour hours`.
    pub fn at(&self, day: i64, hour: i64) -> DateTime<Utc> {
        self.now + Duration::days(day) + Duration::hours(hour)
    }

    /// An engine as the Lambda wires it: IAM, DynamoDB and the EventBridge publisher, with the
    /// short retry policy.
    pub async fn lambda_engine(&self, policy: Policy) -> TestEngine {
        let sdk = self.sdk().await;
        self.engine(policy)
            .await
            .with_publisher(Arc::new(EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(&sdk),
                "default",
                RetryPolicy::fast(),
            )))
    }

    /// What `dormant::app::event::handle_event` takes: [`World::lambda_engine`] as the only
    /// account.
    pub async fn fleet(&self, policy: Policy) -> DormantFleet {
        Fleet {
            engines: vec![Arc::new(self.lambda_engine(policy).await)],
            unreachable: Vec::new(),
            concurrency: 1,
            analyzer: None,
        }
    }

    /// Creates an access key, backdates it and remembers it under `label`; returns its id.
    pub async fn key(
        &self,
        user: &str,
        label: &str,
        created_days_ago: i64,
        last_used_days_ago: Option<i64>,
        active: bool,
    ) -> String {
        let id = self
            .key_with(user, created_days_ago, last_used_days_ago, active)
            .await;
        self.keys
            .lock()
            .unwrap()
            .insert(id.clone(), label.to_string());
        id
    }

    pub fn key_id(&self, label: &str) -> String {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.as_str() == label)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no key labelled {label}"))
    }

    /// Replaces the account id and every known access-key id by stable placeholders.
    pub fn norm(&self, s: &str) -> String {
        let mut out = s.replace(&self.id, "ACCOUNT");
        for (id, label) in self.keys.lock().unwrap().iter() {
            out = out.replace(id, &format!("<{label}>"));
        }
        out
    }

    // ---- the request log ------------------------------------------------------------------

    /// Moves the emulator's request log for this account into ours and clears it there, so that
    /// polling it stays cheap. Only call it when no request is in flight.
    pub fn drain_requests(&self) -> Vec<Value> {
        let fresh = emulator().requests(&self.id);
        emulator().clear_requests(&self.id);
        self.log.lock().unwrap().extend(fresh.iter().cloned());
        fresh
    }

    /// Every request since the last `forget_requests`, drained ones included.
    pub fn all_requests(&self) -> Vec<Value> {
        self.drain_requests();
        self.log.lock().unwrap().clone()
    }

    /// Forgets the log (after the test's own setup).
    pub fn forget_requests(&self) {
        emulator().clear_requests(&self.id);
        self.log.lock().unwrap().clear();
    }

    /// The IAM calls that named `name` (as RoleName or UserName) and [`is_mutating`], since the
    /// last `forget_requests`.
    pub fn mutating_calls_on(&self, name: &str) -> Vec<String> {
        self.all_requests()
            .iter()
            .filter(|r| r["service"] == "iam")
            .filter(|r| r["RoleName"] == name || r["UserName"] == name)
            .filter_map(|r| r["operation"].as_str())
            .filter(|op| is_mutating(op))
            .map(str::to_string)
            .collect()
    }

    // ---- the end state --------------------------------------------------------------------

    /// Everything dormant may change in IAM, normalised: per role and user its tags (with the
    /// time in dormant's stage tag replaced, as the wait counts from the real commit), inline
    /// policy names, and for users the access keys (by label) with their status and whether a
    /// console password exists.
    pub async fn iam_state(&self) -> Value {
        let mut out = BTreeMap::new();
        let roles = self.iam.list_roles().max_items(1000).send().await.unwrap();
        for r in roles.roles() {
            let name = r.role_name();
            out.insert(
                format!("role{}{name}", r.path()),
                self.role_state(name).await.unwrap(),
            );
        }
        let users = self.iam.list_users().max_items(1000).send().await.unwrap();
        for u in users.users() {
            let name = u.user_name();
            out.insert(
                format!("user{}{name}", u.path()),
                self.user_state(name).await.unwrap(),
            );
        }
        json!(out)
    }

    /// One role's part of [`World::iam_state`]; `None` if it does not exist.
    pub async fn role_state(&self, name: &str) -> Option<Value> {
        let tags = self
            .iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .ok()?;
        let mut policies = self
            .iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .ok()?
            .policy_names()
            .to_vec();
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .ok()?;
        policies.extend(policy_names(attached.attached_policies()));
        Some(json!({
            "tags": self.norm_tags(tags.tags()),
            "policies": policies,
        }))
    }

    /// One user's part of [`World::iam_state`]; `None` if it does not exist.
    pub async fn user_state(&self, name: &str) -> Option<Value> {
        let tags = self
            .iam
            .list_user_tags()
            .user_name(name)
            .send()
            .await
            .ok()?;
        let mut policies = self
            .iam
            .list_user_policies()
            .user_name(name)
            .send()
            .await
            .ok()?
            .policy_names()
            .to_vec();
        let attached = self
            .iam
            .list_attached_user_policies()
            .user_name(name)
            .send()
            .await
            .ok()?;
        policies.extend(policy_names(attached.attached_policies()));
        let keys: BTreeMap<String, String> = self
            .iam
            .list_access_keys()
            .user_name(name)
            .send()
            .await
            .ok()?
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    self.norm(k.access_key_id().unwrap_or_default()),
                    k.status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let console = self.has_console(name).await;
        Some(json!({
            "tags": self.norm_tags(tags.tags()),
            "policies": policies,
            "keys": keys,
            "console": console,
        }))
    }

    fn norm_tags(&self, tags: &[Tag]) -> BTreeMap<String, String> {
        tags.iter()
            .map(|t| {
                let key = self.norm(t.key());
                let value = match t.value().rsplit_once(" at ") {
                    Some((head, at))
                        if key.starts_with("dormant:")
                            && DateTime::parse_from_rfc3339(at).is_ok() =>
                    {
                        format!("{} at <time>", self.norm(head))
                    }
                    _ => self.norm(t.value()),
                };
                (key, value)
            })
            .collect()
    }

    /// Every stored record, normalised: subject → stage, keys dormant turned off (by label), the
    /// next step and whether an intent is pending.
    pub async fn records(&self, engine: &TestEngine) -> BTreeMap<String, Value> {
        engine
            .store
            .list(&self.id, None)
            .await
            .unwrap()
            .iter()
            .map(|r| (self.norm(&r.subject.id()), self.norm_record(r)))
            .collect()
    }

    pub fn norm_record(&self, r: &Record) -> Value {
        let mut keys: Vec<String> = r.keys_deactivated.iter().map(|k| self.norm(k)).collect();
        keys.sort();
        json!({
            "stage": r.stage.as_str(),
            "keys_deactivated": keys,
            "next_step": r.next_step.map(|s| s.as_str()),
            "pending": r.pending.as_ref().map(|i| i.step.as_str()),
        })
    }

    /// The steps recorded `done` in each tracked subject's audit trail, in order.
    pub async fn done_steps(&self, engine: &TestEngine) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for r in engine.store.list(&self.id, None).await.unwrap() {
            let done = steps_done(engine, &r.subject).await;
            out.insert(self.norm(&r.subject.id()), done);
        }
        out
    }

    // ---- faults and crashes -----------------------------------------------------------------

    pub fn fault(&self, service: &str, operation: &str, fault: Fault, count: u32) {
        emulator().inject_fault(&self.id, service, operation, fault, count);
    }

    pub fn clear_faults(&self) {
        emulator().clear_faults(&self.id);
    }

    /// Runs `work` and kills it, as a Lambda timeout or a crash would, at the moment the first
    /// IAM `operation` request is on the wire: the request is held by the emulator for
    /// [`CRASH_HOLD`], the future is dropped as soon as the request has arrived, and then this
    /// waits until the held request has been answered, so it has landed server-side (a request
    /// already sent is carried out whether or not its caller lives to see the answer).
    ///
    /// `skip` earlier calls of `operation` go through (the crash hits call `skip + 1`).
    ///
    /// `None` if the crash happened; `Some(output)` if `work` finished without getting there.
    pub async fn crash_at<F: Future>(
        &self,
        operation: &str,
        skip: u32,
        work: F,
    ) -> Option<F::Output> {
        self.crash_in("iam", operation, skip, work).await
    }

    /// [`World::crash_at`] for any service (`dynamodb`, `events`).
    pub async fn crash_in<F: Future>(
        &self,
        service: &str,
        operation: &str,
        skip: u32,
        work: F,
    ) -> Option<F::Output> {
        if skip > 0 {
            self.fault(
                service,
                operation,
                Fault::Latency(StdDuration::from_millis(1)),
                skip,
            );
        }
        self.fault(service, operation, Fault::Latency(CRASH_HOLD), 1);
        let hold_ms = u64::try_from(CRASH_HOLD.as_millis()).unwrap();
        let arrived = async {
            loop {
                tokio::time::sleep(StdDuration::from_millis(5)).await;
                let pending = emulator().faults(&self.id).into_iter().any(|f| {
                    f["service"] == service
                        && f["operation"] == operation
                        && f["fault"] == "latency"
                        && f["latency_ms"] == json!(hold_ms)
                });
                if !pending {
                    return;
                }
            }
        };
        let mut work = Box::pin(work);
        let out = tokio::select! {
            biased;
            out = &mut work => Some(out),
            () = arrived => None,
        };
        match out {
            Some(out) => {
                // Never reached `operation`: take the unused fault back.
                self.clear_faults();
                Some(out)
            }
            None => {
                // Gone for good: nothing after the held request runs.
                drop(work);
                tokio::time::sleep(CRASH_HOLD + StdDuration::from_millis(400)).await;
                None
            }
        }
    }
}

/// How long a request stays on the wire when a crash is simulated around it.
pub const CRASH_HOLD: StdDuration = StdDuration::from_millis(800);

/// The names of attached managed policies (dormant's quarantine is `DormantQuarantineDenyAll`),
/// listed with the inline ones in a state.
fn policy_names(attached: &[aws_sdk_iam::types::AttachedPolicy]) -> Vec<String> {
    attached
        .iter()
        .filter_map(|p| p.policy_name().map(str::to_string))
        .collect()
}
