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
    /// Access-key label → the user it belongs to.
    key_users: Mutex<BTreeMap<String, String>>,
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
            key_users: Mutex::new(BTreeMap::new()),
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
        self.key_users
            .lock()
            .unwrap()
            .insert(format!("<{label}>"), user.to_string());
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

    /// The user of a key, by its placeholder (`<label>`, see [`World::norm`]).
    pub fn user_of_key(&self, placeholder: &str) -> Option<String> {
        self.key_users.lock().unwrap().get(placeholder).cloned()
    }

    /// Replaces the account id and every known access-key id by stable placeholders.
    pub fn norm(&self, s: &str) -> String {
        let mut out = s.replace(&self.id, "ACCOUNT");
        for (id, label) in self.keys.lock().unwrap().iter() {
            out = out.replace(id, &format!("<{label}>"));
        }
        out
    }

    /// The reverse of [`World::norm`]: placeholders back to this account's id and key ids.
    pub fn denorm(&self, s: &str) -> String {
        let mut out = s.replace("ACCOUNT", &self.id);
        for (id, label) in self.keys.lock().unwrap().iter() {
            out = out.replace(&format!("<{label}>"), id);
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

    /// A fault on the next `count` requests that are `call`.
    pub fn fault_on(&self, call: &Call, fault: Fault, count: u32) {
        emulator().inject_fault_on(
            &self.id,
            &call.service,
            &call.operation,
            call.target.as_deref(),
            call.sk.as_deref(),
            fault,
            count,
        );
    }

    pub fn clear_faults(&self) {
        emulator().clear_faults(&self.id);
    }

    /// The faults still queued (not yet hit) in this account.
    pub fn faults_left(&self) -> Vec<Value> {
        emulator().faults(&self.id)
    }

    /// Takes the queued faults out (e.g. while an owner's own calls run); [`World::unpark_faults`]
    /// puts them back as they were.
    pub fn park_faults(&self) -> Vec<Value> {
        let parked = self.faults_left();
        self.clear_faults();
        parked
    }

    pub fn unpark_faults(&self, parked: &[Value]) {
        emulator().requeue_faults(parked);
    }

    /// Runs `work` and kills it, as a Lambda timeout or a crash would, at the moment the first
    /// IAM `operation` request is on the wire: see [`World::crash_on`].
    pub async fn crash_at<F: Future>(
        &self,
        operation: &str,
        skip: u32,
        work: F,
    ) -> Option<F::Output> {
        self.crash_on(&Call::new("iam", operation), skip, work)
            .await
    }

    /// [`World::crash_at`] for any service (`dynamodb`, `events`).
    pub async fn crash_in<F: Future>(
        &self,
        service: &str,
        operation: &str,
        skip: u32,
        work: F,
    ) -> Option<F::Output> {
        self.crash_on(&Call::new(service, operation), skip, work)
            .await
    }

    /// Runs `work` and kills it at the moment request number `skip + 1` that is `call` is on
    /// the wire ([`World::arm_crash`], [`World::until_crash`]). `None` if the crash happened;
    /// `Some(output)` if `work` finished without getting there (the armed crash is then taken
    /// back).
    pub async fn crash_on<F: Future>(&self, call: &Call, skip: u32, work: F) -> Option<F::Output> {
        self.arm_crash(call, skip);
        let out = self.until_crash(std::slice::from_ref(call), work).await;
        if out.is_some() {
            self.clear_faults();
        }
        out
    }

    /// Arms a crash at request number `skip + 1` that is `call`: the `skip` earlier ones go
    /// through (each counted by a 1 ms latency fault), that one is held by the emulator for
    /// [`CRASH_HOLD`]. Stays armed across runs until one reaches it.
    pub fn arm_crash(&self, call: &Call, skip: u32) {
        if skip > 0 {
            self.fault_on(call, Fault::Latency(StdDuration::from_millis(1)), skip);
        }
        self.fault_on(call, Fault::Latency(CRASH_HOLD), 1);
    }

    /// Whether a crash armed at `call` is still waiting for its request.
    pub fn crash_armed(&self, call: &Call) -> bool {
        holds(&self.faults_left(), call)
    }

    /// Runs `work` under armed crashes: as soon as one held request has reached the emulator,
    /// `work` is dropped (nothing after that request runs: no commit, no audit), and this waits
    /// until the held request has been carried out (a request already sent lands whether or not
    /// its caller lives to see the answer). `None` if a crash happened, `Some(output)` if `work`
    /// finished first (the crashes stay armed).
    pub async fn until_crash<F: Future>(&self, armed: &[Call], work: F) -> Option<F::Output> {
        if armed.is_empty() {
            return Some(work.await);
        }
        let arrived = async {
            loop {
                tokio::time::sleep(StdDuration::from_millis(5)).await;
                let left = self.faults_left();
                if armed.iter().any(|call| !holds(&left, call)) {
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
        if out.is_none() {
            // Gone for good: nothing after the held request runs.
            drop(work);
            tokio::time::sleep(CRASH_HOLD + StdDuration::from_millis(400)).await;
        }
        out
    }
}

/// Whether `faults` still hold a crash for `call` (see [`World::arm_crash`]).
fn holds(faults: &[Value], call: &Call) -> bool {
    let hold_ms = u64::try_from(CRASH_HOLD.as_millis()).unwrap();
    faults.iter().any(|f| {
        call.is_aimed_at_by(f) && f["fault"] == "latency" && f["latency_ms"] == json!(hold_ms)
    })
}

/// One kind of request the chaos tests aim faults and crashes at: an operation of a service,
/// optionally only where it names `target` (an IAM role, user or access key, a DynamoDB
/// partition key)
/// and a DynamoDB sort key `sk`. Counting the requests of one identity (not of the account)
/// keeps a crash position the same from run to run, whatever order concurrently processed
/// identities interleave in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub target: Option<String>,
    pub sk: Option<String>,
}

impl Call {
    pub fn new(service: &str, operation: &str) -> Self {
        Call {
            service: service.to_string(),
            operation: operation.to_string(),
            target: None,
            sk: None,
        }
    }

    /// Only requests naming `target`.
    pub fn on(mut self, target: &str) -> Self {
        self.target = Some(target.to_string());
        self
    }

    /// Only DynamoDB requests for items whose sort key starts with `sk`.
    pub fn sk(mut self, sk: &str) -> Self {
        self.sk = Some(sk.to_string());
        self
    }

    /// The request a log entry shows, as narrowly as a fault can name it: the identity of an IAM
    /// call, the item key of a DynamoDB one (of a timestamped sort key such as an audit entry's
    /// `AUDIT#<time>#<id>`, its fixed prefix `AUDIT#`).
    pub fn of(request: &Value) -> Self {
        let mut call = Call::new(
            request["service"].as_str().unwrap_or(""),
            request["operation"].as_str().unwrap_or(""),
        );
        // A key's own calls (`GetAccessKeyLastUsed`) name only the key.
        for field in ["RoleName", "UserName", "AccessKeyId", "pk"] {
            if let Some(t) = request[field].as_str() {
                call.target = Some(t.to_string());
                break;
            }
        }
        if let Some(sk) = request["sk"].as_str() {
            let fixed = sk.find('#').map_or(sk, |i| &sk[..=i]);
            call.sk = Some(fixed.to_string());
        }
        call
    }

    /// Whether the queued fault `f` ([`World::faults_left`]) was aimed at exactly this call.
    pub fn is_aimed_at_by(&self, f: &Value) -> bool {
        f["service"] == self.service.as_str()
            && f["operation"] == self.operation.as_str()
            && f["target"].as_str() == self.target.as_deref()
            && f["sk"].as_str() == self.sk.as_deref()
    }

    /// Whether this is a state item write (`PutItem` of a record's `STATE` item).
    pub fn is_state_write(&self) -> bool {
        self.operation == "PutItem" && self.sk.as_deref() == Some("STATE")
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.service, self.operation)?;
        if let Some(t) = &self.target {
            // Partition keys carry the account id: the subject part is enough to read.
            write!(f, " on {}", t.rsplit(':').next().unwrap_or(t))?;
        }
        if let Some(k) = &self.sk {
            write!(f, " {k}")?;
        }
        Ok(())
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

/// JSON for an assertion message that can be diffed by eye.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// No step is recorded done twice for any subject of `done` ([`World::done_steps`]).
pub fn assert_no_step_done_twice(done: &BTreeMap<String, Vec<String>>, context: &str) {
    for (subject, steps) in done {
        let mut seen = steps.clone();
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(
            before,
            seen.len(),
            "{context}: a step recorded done twice for {subject}: {steps:?}"
        );
    }
}
