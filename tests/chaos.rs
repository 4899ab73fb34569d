#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! Reliability ("chaos") tests against the emulator (issue 9).
//!
//! 1. A seeded chaos run: one account with a mix of identities lives through a month of sweeps,
//!    ticks, owner actions and an operator `undo`, once without faults (the reference) and once
//!    per seed with random faults (throttling, HTTP 500, AccessDenied, latency on IAM, DynamoDB
//!    and EventBridge) and simulated crashes. After the faults stop and a few more runs past the
//!    intent lease, IAM and DynamoDB must be where the reference ended, every step recorded done
//!    exactly as often as in the reference, and the protected and exempt roles never touched.
//!    `DORMANT_CHAOS_SEEDS=N` runs N more seeds; a failure names its seed and the fault plan.
//! 2. Duplicate, out-of-order and concurrent delivery converge to the sequential end state.
//! 3. `undo` with a fault on each of its calls in turn either completes or leaves an intent that
//!    the next run (or a second `undo`) completes; never a half-restored identity.
//!
//!
//! How a crash is simulated: [`World::crash_at`] holds one IAM request on the wire (injected
//! latency) and drops the engine's future as soon as that request has reached the emulator, then
//! waits until the held request has been carried out. That is what a Lambda timeout or a killed
//! process does: the request already sent lands, nothing after it runs (no commit, no audit). An
//! `AccessDenied` on the N-th mutation, the other option, is not a crash: the engine sees the
//! error and records a failure; the seeded run uses both.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use dormant::app::event::{handle_event, EventError, EventReport};
use dormant::config::Config;
use dormant::domain::{
    IdentityArg, Outcome, Policy, Principal, PrincipalKind, Stage, Step, Subject,
};
use dormant::error::Error;
use dormant::ports::Store;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::support::account::{steps_done, TestEngine, ALLOW_S3};
use crate::support::emulated_world::{is_mutating, Rng, World};
use crate::support::emulator::{emulator, Fault};
use crate::support::events::{fixture, rules};

// =============================================================================================
// 1. The seeded chaos run
// =============================================================================================

/// Simulated days; the reference reaches its end state by day 26, the rest is slack for steps
/// that faults pushed back.
const DAYS: i64 = 30;

/// Seeds of the default run.
const SEEDS: [u64; 3] = [0x00C0_FFEE, 0x0BAD_F00D, 0x5EED_0003];

const PROTECTED_ROLE: &str = "AWSServiceRoleForSupport";
const EXEMPT_ROLE: &str = "exempt-owner";

/// Short waits (5 / 5 / 8 days) so the whole ladder fits in a month; a breaker that never trips,
/// so faults cannot change which steps are allowed.
fn chaos_policy() -> Policy {
    let mut p = Policy::default();
    p.ladder.notice_to_quarantine = Duration::days(5);
    p.ladder.quarantine_to_keys = Duration::days(5);
    p.ladder.to_delete = Duration::days(8);
    p.breaker.max_actions_per_run = 10_000;
    p.breaker.min_count = 10_000;
    p
}

/// The identities. In the reference:
/// - `idle-etl` (never used): notice d0, quarantine d5, delete d13;
/// - `comeback-role`: noticed, quarantined, used again d7 → released d8;
/// - `exempt-later`: noticed, quarantined, owner adds `dormant:exempt` d6 → exempt d7;
/// - `undo-me`: noticed, quarantined, operator `undo` d8;
/// - `busy-role` (used daily), `exempt-owner` (exempt by tag from the start) and the
///   service-linked `AWSServiceRoleForSupport` (dormant, protected): never touched;
/// - `leaver` (console password and 2 keys, one turned off by its owner, all unused for months):
///   notice d0, quarantine d5, keys d10 (only the active one), delete d18;
/// - `returner` (same keys): up to keys d10, signs in again d11 → released d12, the key dormant
///   turned off (only it) back on; that key, unused for 200 days, is then covered by the user's
///   30-day cool-off and stays untouched;
/// - `lone-key-user` (uses one key daily, the other unused): key notice d0, deactivate d5,
///   delete d13;
/// - `console-user` (uses a key daily, console password unused): password notice d0, login
///   profile deleted d5.
async fn build_chaos_world(w: &World) {
    w.role_with("/", "idle-etl", 200, None, &[("team", "data")])
        .await;
    w.role_with("/", "comeback-role", 200, Some(150), &[]).await;
    w.role_with("/", "exempt-later", 200, None, &[]).await;
    w.role_with("/", "undo-me", 200, None, &[("owner", "ops")])
        .await;
    w.role_with("/", "busy-role", 300, Some(1), &[]).await;
    w.role_with(
        "/",
        EXEMPT_ROLE,
        300,
        None,
        &[
            ("dormant:exempt", "true"),
            ("dormant:exempt-reason", "vendor integration"),
        ],
    )
    .await;
    w.role_with(
        "/aws-service-role/support.amazonaws.com/",
        PROTECTED_ROLE,
        500,
        None,
        &[],
    )
    .await;
    for user in ["leaver", "returner"] {
        w.user_with("/", user, 400, Some(200), true).await;
        w.key(user, &format!("{user}-k1"), 300, Some(200), true)
            .await;
        w.key(user, &format!("{user}-k2"), 300, Some(250), false)
            .await;
    }
    w.user_with("/", "lone-key-user", 400, None, false).await;
    w.key("lone-key-user", "lone-daily", 300, Some(1), true)
        .await;
    w.key("lone-key-user", "lone-unused", 300, Some(100), true)
        .await;
    w.user_with("/staff/", "console-user", 400, Some(100), true)
        .await;
    w.key("console-user", "console-daily", 300, Some(1), true)
        .await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// The identities in use are used (backdated to an hour ago).
    DailyUse,
    Sweep,
    Tick,
    /// The owner tags the role `dormant:exempt`.
    OwnerExempts(&'static str),
    /// The role is used again.
    RoleUsed(&'static str),
    /// The user signs in to the console again.
    UserSignsIn(&'static str),
    /// An operator runs `dormant undo`.
    Undo(&'static str),
}

impl Act {
    /// Acts of the system under test, which faults and crashes may hit.
    fn is_system(self) -> bool {
        matches!(self, Act::Sweep | Act::Tick | Act::Undo(_))
    }
}

/// The schedule, in time order: daily use and a sweep at 00:00, ticks at 08:00 and 16:00, the
/// owners' and the operator's actions in between.
fn schedule() -> Vec<(i64, i64, Act)> {
    let mut s = Vec::new();
    for day in 0..=DAYS {
        s.push((day, 0, Act::DailyUse));
        s.push((day, 0, Act::Sweep));
        s.push((day, 8, Act::Tick));
        s.push((day, 16, Act::Tick));
    }
    s.push((6, 3, Act::OwnerExempts("exempt-later")));
    s.push((7, 3, Act::RoleUsed("comeback-role")));
    s.push((8, 9, Act::Undo("undo-me")));
    s.push((11, 3, Act::UserSignsIn("returner")));
    // Stable: same-time entries keep their order (use before sweep).
    s.sort_by_key(|(d, h, _)| (*d, *h));
    s
}

/// What a run ended with: the comparable state, plus what the reference did at each step.
#[derive(Debug, Clone)]
struct EndState {
    iam: Value,
    records: BTreeMap<String, Value>,
    done: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Reference {
    end: EndState,
    /// The mutating IAM operations the reference made at each schedule step (by index).
    step_mutations: Vec<Vec<String>>,
}

/// The reference run is the same for every seed: computed once per test binary.
async fn reference() -> &'static Reference {
    static REFERENCE: OnceCell<Reference> = OnceCell::const_new();
    REFERENCE
        .get_or_init(|| async {
            let (end, step_mutations, _) = run_world(None, None).await;
            Reference {
                end,
                step_mutations,
            }
        })
        .await
}

async fn owner_act(w: &World, act: Act, now: DateTime<Utc>) {
    let hour_ago = now - Duration::hours(1);
    match act {
        Act::DailyUse => {
            emulator().backdate_role(&w.id, "busy-role", None, Some(hour_ago));
            for (user, key) in [
                ("lone-key-user", "lone-daily"),
                ("console-user", "console-daily"),
            ] {
                emulator().backdate_access_key(&w.id, user, &w.key_id(key), None, Some(hour_ago));
            }
        }
        Act::OwnerExempts(role) => {
            let until = (now + Duration::days(60)).format("%Y-%m-%d").to_string();
            w.tag_role(
                role,
                &[
                    ("dormant:exempt", "true"),
                    ("dormant:exempt-until", &until),
                    ("dormant:exempt-reason", "quarterly batch"),
                ],
            )
            .await;
        }
        Act::RoleUsed(role) => emulator().backdate_role(&w.id, role, None, Some(now)),
        Act::UserSignsIn(user) => emulator().backdate_user(&w.id, user, None, Some(now)),
        Act::Sweep | Act::Tick | Act::Undo(_) => unreachable!("not an owner act"),
    }
}

/// What an operator does: run `undo`, and run it again (a minute later) if it errored before
/// getting anywhere; stop once it says done, failed (the engine finishes it) or refused.
async fn operator_undo(engine: &TestEngine, name: &str, now: DateTime<Utc>) -> Vec<String> {
    let arg: IdentityArg = format!("role/{name}").parse().unwrap();
    let mut seen = Vec::new();
    for attempt in 0..5 {
        let at = now + Duration::minutes(attempt);
        match engine
            .undo(&arg, "operator: the role is still needed", at)
            .await
        {
            Ok(r) => {
                seen.push(format!("undo {}: {}", r.outcome.as_str(), r.reason));
                break;
            }
            Err(e @ Error::Refused(_)) => {
                seen.push(format!("undo refused: {e}"));
                break;
            }
            Err(e) => seen.push(format!("undo error: {e}")),
        }
    }
    seen
}

/// Runs a system act; returns a line for the journal. In the reference every act must succeed.
async fn system_act(engine: &TestEngine, act: Act, now: DateTime<Utc>, reference: bool) -> String {
    match act {
        Act::Sweep | Act::Tick => {
            let r = if act == Act::Sweep {
                engine.sweep(now).await
            } else {
                engine.tick(now).await
            };
            match r {
                Ok(report) => {
                    if reference {
                        assert_eq!(report.failed(), 0, "the reference never fails: {report:?}");
                    }
                    let acted: Vec<String> = report
                        .actions
                        .iter()
                        .filter(|a| a.outcome != Outcome::Skipped)
                        .map(|a| {
                            format!(
                                "{} {} {}",
                                a.step,
                                a.outcome.as_str(),
                                a.identity.rsplit(':').next().unwrap_or("")
                            )
                        })
                        .collect();
                    format!("{act:?}: {acted:?}")
                }
                Err(e) => {
                    assert!(!reference, "the reference never fails: {e}");
                    format!("{act:?}: error {e}")
                }
            }
        }
        Act::Undo(name) => {
            let seen = operator_undo(engine, name, now).await;
            if reference {
                assert!(seen[0].starts_with("undo done"), "{seen:?}");
            }
            format!("undo {name}: {seen:?}")
        }
        _ => unreachable!(),
    }
}

/// Crashing while these are on the wire hits a known bug (an interrupted delete re-takes its
/// snapshot of an identity that is gone, and fails for ever; see
/// `an_interrupted_delete_is_completed_by_the_next_run`): left out of the seeded crashes until it
/// is fixed, so that the seeds keep finding other things.
const CRASH_POINTS_OF_KNOWN_BUGS: &[&str] = &["DeleteRole", "DeleteUser"];

const IAM_READS: &[&str] = &[
    "GetAccountAuthorizationDetails",
    "GenerateCredentialReport",
    "GetCredentialReport",
    "GetRole",
    "GetUser",
    "ListRolePolicies",
    "ListUserPolicies",
    "ListUserTags",
    "ListRoleTags",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
    "GetLoginProfile",
    "ListAttachedRolePolicies",
    "ListInstanceProfilesForRole",
    "ListGroupsForUser",
];

const IAM_MUTATIONS: &[&str] = &[
    "TagRole",
    "UntagRole",
    "TagUser",
    "UntagUser",
    "AttachRolePolicy",
    "AttachUserPolicy",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "DeleteRolePolicy",
    "DeleteUserPolicy",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "DeleteLoginProfile",
    "DeleteRole",
    "DeleteUser",
];

/// One random fault, described for the journal. DynamoDB writes only get faults the adapter
/// retries past: a write that fails for good after the commit loses the audit entry, a known bug
/// kept in its own test (`a_failed_audit_write_after_the_commit_loses_the_done_entry`).
fn random_fault(w: &World, rng: &mut Rng, reference_ops: &[String]) -> String {
    let latency = |rng: &mut Rng| Fault::Latency(StdDuration::from_millis(rng.range(10, 120)));
    let (service, op, fault, count): (&str, String, Fault, u32) = match rng.below(100) {
        0..=49 => {
            // IAM: the ops the reference made at this step, half of the time.
            let op = if !reference_ops.is_empty() && rng.chance(50) {
                rng.pick(reference_ops).clone()
            } else if rng.chance(50) {
                rng.pick(IAM_MUTATIONS).to_string()
            } else {
                rng.pick(IAM_READS).to_string()
            };
            let (fault, count) = match rng.below(4) {
                0 => (Fault::Throttle, rng.range(1, 3)),
                // Up to 5 are retried away; more exhaust the retries.
                1 => (Fault::Http500, rng.range(1, 8)),
                2 => (Fault::AccessDenied, 1),
                _ => (latency(rng), rng.range(1, 3)),
            };
            ("iam", op, fault, count as u32)
        }
        50..=79 => {
            let op = *rng.pick(&["PutItem", "Query", "GetItem"]);
            let (mut fault, mut count) = match rng.below(4) {
                0 => (Fault::Throttle, rng.range(1, 3)),
                1 => (Fault::Http500, rng.range(1, 4)),
                2 if op != "PutItem" => (Fault::AccessDenied, 1),
                _ => (latency(rng), rng.range(1, 3)),
            };
            // Unused faults stay queued for later steps: never let errors on PutItem pile up
            // past what the retries absorb (5).
            let queued: u64 = emulator()
                .faults(&w.id)
                .iter()
                .filter(|f| f["operation"] == "PutItem" && f["fault"] != "latency")
                .filter_map(|f| f["count"].as_u64())
                .sum();
            if op == "PutItem" && !matches!(fault, Fault::Latency(_)) && queued + count > 5 {
                (fault, count) = (latency(rng), 1);
            }
            ("dynamodb", op.to_string(), fault, count as u32)
        }
        _ => {
            let (fault, count) = match rng.below(4) {
                0 => (Fault::Throttle, rng.range(1, 8)),
                1 => (Fault::Http500, rng.range(1, 8)),
                2 => (Fault::AccessDenied, 1),
                _ => (latency(rng), 1),
            };
            ("events", "PutEvents".to_string(), fault, count as u32)
        }
    };
    w.fault(service, &op, fault, count);
    format!("{service}:{op} {fault:?} x{count}")
}

/// Lives through the schedule in a fresh account. `seed: None` is the reference (no faults).
/// Returns the end state, the mutating IAM operations per step, and the journal of what happened.
async fn run_world(
    seed: Option<u64>,
    reference: Option<&Reference>,
) -> (EndState, Vec<Vec<String>>, Vec<String>) {
    let w = World::new().await;
    build_chaos_world(&w).await;
    w.forget_requests();
    let engine = w.lambda_engine(chaos_policy()).await;
    let mut rng = seed.map(Rng::new);
    let mut journal = Vec::new();
    let mut step_mutations = Vec::new();

    for (i, (day, hour, act)) in schedule().into_iter().enumerate() {
        let now = w.at(day, hour);
        if !act.is_system() {
            if rng.is_some() {
                // The owners' own calls are not what is under test.
                w.clear_faults();
            }
            owner_act(&w, act, now).await;
            step_mutations.push(Vec::new());
            continue;
        }
        let mut crash = None;
        if let (Some(rng), Some(reference)) = (rng.as_mut(), reference) {
            // Steps where the reference changed IAM get most of the chaos.
            let ops = &reference.step_mutations[i];
            let busy = !ops.is_empty();
            if rng.chance(if busy { 70 } else { 25 }) {
                for _ in 0..rng.range(1, if busy { 3 } else { 1 }) {
                    let f = random_fault(&w, rng, ops);
                    journal.push(format!("d{day}h{hour} fault {f}"));
                }
            }
            if busy && rng.chance(50) {
                // The N-th mutation of the step, as the reference made them.
                let n = rng.below(ops.len() as u64) as usize;
                let op = ops[n].clone();
                let skip = ops[..n].iter().filter(|o| **o == op).count() as u32;
                if rng.chance(50) && !CRASH_POINTS_OF_KNOWN_BUGS.contains(&op.as_str()) {
                    journal.push(format!(
                        "d{day}h{hour} crash while {op} #{} is on the wire",
                        skip + 1
                    ));
                    crash = Some((op, skip));
                } else {
                    if skip > 0 {
                        w.fault(
                            "iam",
                            &op,
                            Fault::Latency(StdDuration::from_millis(1)),
                            skip,
                        );
                    }
                    w.fault("iam", &op, Fault::AccessDenied, 1);
                    journal.push(format!(
                        "d{day}h{hour} fault iam:{op} #{} AccessDenied",
                        skip + 1
                    ));
                }
            }
        }
        let line = match &crash {
            Some((op, skip)) => match w
                .crash_at(op, *skip, system_act(&engine, act, now, false))
                .await
            {
                Some(line) => format!("{line} (the crash point was not reached)"),
                None => format!("{act:?}: crashed at {op}"),
            },
            None => system_act(&engine, act, now, seed.is_none()).await,
        };
        journal.push(format!("d{day}h{hour} {line}"));
        if seed.is_none() {
            let ops: Vec<String> = w
                .drain_requests()
                .iter()
                .filter(|r| r["service"] == "iam")
                .filter_map(|r| r["operation"].as_str())
                .filter(|op| is_mutating(op))
                .map(str::to_string)
                .collect();
            step_mutations.push(ops);
        } else {
            step_mutations.push(Vec::new());
        }
    }

    // The faults stop; a few more runs, past the 15-minute intent lease, converge. None of them
    // may fail.
    w.clear_faults();
    let end = w.at(DAYS, 20);
    for (minutes, act) in [
        (0, Act::Tick),
        (20, Act::Tick),
        (40, Act::Sweep),
        (60, Act::Tick),
    ] {
        let line = system_act(&engine, act, end + Duration::minutes(minutes), false).await;
        let failed = line.contains(" failed ") || line.contains("error");
        journal.push(format!("converge +{minutes}min {line}"));
        assert!(
            !failed,
            "seed {seed:?}: a run after the faults stopped failed\n{}",
            journal.join("\n")
        );
    }

    for name in [PROTECTED_ROLE, EXEMPT_ROLE] {
        assert_eq!(
            w.mutating_calls_on(name),
            Vec::<String>::new(),
            "seed {seed:?}: {name} must never see a mutating call\n{}",
            journal.join("\n")
        );
    }
    let end = EndState {
        iam: w.iam_state().await,
        records: w.records(&engine).await,
        done: w.done_steps(&engine).await,
    };
    (end, step_mutations, journal)
}

fn assert_no_step_done_twice(done: &BTreeMap<String, Vec<String>>, context: &str) {
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

async fn chaos_seed(seed: u64) {
    let reference = reference().await;
    let (end, _, journal) = run_world(Some(seed), Some(reference)).await;
    let context = || format!("seed {seed:#x}; what happened:\n{}", journal.join("\n"));
    if std::env::var_os("DORMANT_CHAOS_VERBOSE").is_some() {
        eprintln!("{}", context());
    }
    assert_eq!(
        pretty(&end.iam),
        pretty(&reference.end.iam),
        "(a) IAM end state differs from the reference; {}",
        context()
    );
    assert_eq!(
        end.records,
        reference.end.records,
        "(a) DynamoDB records differ from the reference; {}",
        context()
    );
    assert_no_step_done_twice(&end.done, &context());
    assert_eq!(
        end.done,
        reference.end.done,
        "(b) the steps recorded done differ from the reference; {}",
        context()
    );
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// The reference itself: the ladder walked as documented, so that comparing with it means
/// something.
#[tokio::test]
async fn the_reference_run_walks_every_identity_to_its_documented_end() {
    let r = reference().await;
    assert_no_step_done_twice(&r.end.done, "reference");
    let stage = |id: &str| {
        r.end
            .records
            .iter()
            .find(|(k, _)| k.ends_with(id))
            .map(|(_, v)| v["stage"].as_str().unwrap().to_string())
            .unwrap_or_else(|| format!("untracked {id}"))
    };
    let expected = [
        ("role/idle-etl", "deleted"),
        ("role/comeback-role", "released"),
        ("role/exempt-later", "exempt"),
        ("role/undo-me", "released"),
        ("user/leaver", "deleted"),
        ("user/returner", "released"),
        ("user/lone-key-user/key/<lone-unused>", "deleted"),
        ("user/staff/console-user/password", "deleted"),
    ];
    for (id, want) in expected {
        assert_eq!(stage(id), want, "{id}: {:#?}", r.end.records);
    }
    assert_eq!(
        r.end.records.len(),
        expected.len(),
        "nothing else is tracked: {:#?}",
        r.end.records
    );
    let iam = &r.end.iam;
    assert!(iam.get("role/idle-etl").is_none() && iam.get("user/leaver").is_none());
    assert_eq!(
        iam["user/returner"]["keys"],
        serde_json::json!({"<returner-k1>": "Active", "<returner-k2>": "Inactive"}),
        "the owner's key stays off; dormant's went back on and stays on during the cool-off"
    );
    assert_eq!(
        iam["user/lone-key-user"]["keys"],
        serde_json::json!({"<lone-daily>": "Active"})
    );
    assert_eq!(iam["user/staff/console-user"]["console"], false);
    for role in ["comeback-role", "exempt-later", "undo-me", "busy-role"] {
        let role = &iam[format!("role/{role}")];
        assert_eq!(role["policies"], serde_json::json!([]), "{role}");
        assert!(
            !role["tags"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("dormant:stage") || k.starts_with("dormant:next")),
            "{role}"
        );
    }
    assert_eq!(
        r.end.done["arn:aws:iam::ACCOUNT:role/idle-etl"],
        vec!["notice", "quarantine", "delete"]
    );
    assert_eq!(
        r.end.done["arn:aws:iam::ACCOUNT:user/returner"],
        vec!["notice", "quarantine", "deactivate_keys", "release"]
    );
}

#[tokio::test]
async fn chaos_seed_1() {
    chaos_seed(SEEDS[0]).await;
}

#[tokio::test]
async fn chaos_seed_2() {
    chaos_seed(SEEDS[1]).await;
}

#[tokio::test]
async fn chaos_seed_3() {
    chaos_seed(SEEDS[2]).await;
}

/// `DORMANT_CHAOS_SEEDS=N` runs N more seeds (`DORMANT_CHAOS_SEED_BASE` picks where they start,
/// default 1000), one after the other; a failure names its seed.
#[tokio::test]
async fn chaos_more_seeds_from_env() {
    let n: u64 = std::env::var("DORMANT_CHAOS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let base: u64 = std::env::var("DORMANT_CHAOS_SEED_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for seed in base..base + n {
        chaos_seed(seed).await;
    }
}

// =============================================================================================
// 2. Duplicate, out-of-order and concurrent delivery
// =============================================================================================

/// Identities for the event tests: a dormant role and user (whole-identity findings), an active
/// user with one unused key, and an active user with an unused console password.
async fn build_event_world(w: &World) -> (String, String) {
    w.role_with("/", "ev-role", 200, None, &[]).await;
    w.user_with("/", "ev-user", 400, Some(200), true).await;
    w.key("ev-user", "ev-user-k", 300, Some(200), true).await;
    w.user_with("/", "ev-key-user", 400, None, false).await;
    w.key("ev-key-user", "ev-daily", 300, Some(1), true).await;
    w.key("ev-key-user", "ev-unused", 300, Some(100), true)
        .await;
    w.user_with("/engineering/", "ev-console", 400, Some(100), true)
        .await;
    w.key("ev-console", "ev-console-daily", 300, Some(1), true)
        .await;
    (w.role_id("ev-role").await, w.user_id("ev-user").await)
}

/// The fixtures, pointed at this account's identities, with event ids unique to `wave` (a
/// finding re-imported later is a new event). Labels ending in `-resolved`/`-passed` are the
/// out-of-order companions: the same finding, resolved.
fn wave_events(w: &World, role_id: &str, user_id: &str, wave: &str) -> Vec<(String, Value)> {
    let acct = w.id.clone();
    let arn = |kind: &str, path_name: &str| format!("arn:aws:iam::{acct}:{kind}/{path_name}");
    let mut out = Vec::new();
    let mut add = |label: &str, mut e: Value| {
        e["id"] = Value::from(format!("{label}-{wave}"));
        e["account"] = Value::from(acct.clone());
        out.push((label.to_string(), e));
    };

    let mut e = fixture("access-analyzer-unused-role.json");
    e["detail"]["resource"] = Value::from(arn("role", "ev-role"));
    e["detail"]["accountId"] = Value::from(acct.clone());
    add("aa-role", e);

    let mut e = fixture("config-role-noncompliant-aroa.json");
    e["detail"]["resourceId"] = Value::from(role_id);
    e["detail"]["awsAccountId"] = Value::from(acct.clone());
    e["detail"]["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"]
        ["resourceId"] = Value::from(role_id);
    add("config-role", e);

    let mut e = fixture("securityhub-iam8-user.json");
    let f = &mut e["detail"]["findings"][0];
    f["AwsAccountId"] = Value::from(acct.clone());
    f["Resources"][0]["Id"] = Value::from(arn("user", "ev-user"));
    f["Resources"][0]["Details"]["AwsIamUser"]["UserName"] = Value::from("ev-user");
    f["Resources"][0]["Details"]["AwsIamUser"]["UserId"] = Value::from(user_id);
    let mut passed = e.clone();
    add("sh-user", e);
    passed["detail"]["findings"][0]["Compliance"]["Status"] = Value::from("PASSED");
    add("sh-user-passed", passed);

    let mut e = fixture("config-user-noncompliant-aida.json");
    e["detail"]["resourceId"] = Value::from(user_id);
    e["detail"]["awsAccountId"] = Value::from(acct.clone());
    e["detail"]["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"]
        ["resourceId"] = Value::from(user_id);
    add("config-user", e);

    for (label, file) in [
        ("aa-key", "access-analyzer-unused-access-key.json"),
        ("aa-key-resolved", "access-analyzer-resolved.json"),
    ] {
        let mut e = fixture(file);
        e["detail"]["resource"] = Value::from(arn("user", "ev-key-user"));
        e["detail"]["accountId"] = Value::from(acct.clone());
        add(label, e);
    }

    let mut e = fixture("access-analyzer-unused-password.json");
    e["detail"]["resource"] = Value::from(arn("user", "engineering/ev-console"));
    e["detail"]["accountId"] = Value::from(acct.clone());
    add("aa-password", e);

    let mut e = fixture("cloudtrail-untaguser-dormant.json");
    e["detail"]["requestParameters"]["userName"] = Value::from("ev-user");
    e["detail"]["recipientAccountId"] = Value::from(acct.clone());
    e["detail"]["userIdentity"]["accountId"] = Value::from(acct.clone());
    add("ct-untag", e);
    out
}

fn is_resolution(label: &str) -> bool {
    label.ends_with("-passed") || label.ends_with("-resolved")
}

fn default_policy() -> Policy {
    Config::from_toml("").unwrap().policy
}

/// The days on which findings arrive: notice, quarantine (and the key and password steps),
/// keys, deletion of the role and the key.
const WAVES: [i64; 4] = [0, 7, 14, 23];

/// Every event delivered three times (one batch of three at once, the other copies shuffled in
/// among the other events), resolved findings before and after the failing ones, against three
/// Lambda instances: the same end state as one delivery each in order, each step done once, each
/// event processed once, and the resolutions ignored (dormant decides from IAM, not from a
/// finding's status: only fresh use releases).
#[tokio::test]
async fn duplicate_and_out_of_order_delivery_converge_to_the_sequential_end_state() {
    let (a, b) = tokio::join!(World::new(), World::new());
    let (ids_a, ids_b) = tokio::join!(build_event_world(&a), build_event_world(&b));
    a.forget_requests();
    b.forget_requests();
    let sequential = a.fleet(default_policy()).await;
    let lambdas = [
        b.fleet(default_policy()).await,
        b.fleet(default_policy()).await,
        b.fleet(default_policy()).await,
    ];
    let rules = rules();
    let mut rng = Rng::new(7);

    for (n, day) in WAVES.into_iter().enumerate() {
        let wave = format!("w{n}");
        let now = a.at(day, 1);
        for (label, event) in wave_events(&a, &ids_a.0, &ids_a.1, &wave) {
            let r = handle_event(&event, &sequential, &rules, None, now)
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(r.run.failed(), 0, "{label}: {r:?}");
        }

        // Three copies of each; the first event's copies arrive at the same instant.
        let events = wave_events(&b, &ids_b.0, &ids_b.1, &wave);
        let mut deliveries: Vec<(String, Value)> = events
            .iter()
            .flat_map(|e| std::iter::repeat_n(e.clone(), 3))
            .collect();
        let first: Vec<_> = deliveries.drain(..3).collect();
        for i in (1..deliveries.len()).rev() {
            deliveries.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut results: Vec<(String, Result<EventReport, EventError>)> = Vec::new();
        let (r0, r1, r2) = tokio::join!(
            handle_event(&first[0].1, &lambdas[0], &rules, None, now),
            handle_event(&first[1].1, &lambdas[1], &rules, None, now),
            handle_event(&first[2].1, &lambdas[2], &rules, None, now),
        );
        for r in [r0, r1, r2] {
            results.push((first[0].0.clone(), r));
        }
        // The rest in groups of three concurrent deliveries (different events, or copies).
        for group in deliveries.chunks(3) {
            let get = |i: usize| group.get(i).or(group.first()).unwrap();
            let (r0, r1, r2) = tokio::join!(
                handle_event(&get(0).1, &lambdas[0], &rules, None, now),
                handle_event(&get(1).1, &lambdas[1], &rules, None, now),
                handle_event(&get(2).1, &lambdas[2], &rules, None, now),
            );
            for (i, r) in [r0, r1, r2].into_iter().enumerate().take(group.len()) {
                results.push((get(i).0.clone(), r));
            }
        }

        for (label, _) in &events {
            let mine: Vec<&EventReport> = results
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(_, r)| {
                    r.as_ref()
                        .unwrap_or_else(|e| panic!("wave {n} {label}: {e}"))
                })
                .collect();
            assert_eq!(mine.len(), 3, "{label}");
            if is_resolution(label) {
                for r in &mine {
                    let why = r.ignored.as_deref().unwrap_or_default();
                    assert!(
                        why.contains("PASSED") || why.contains("RESOLVED"),
                        "{label}: a resolved finding is ignored, not acted on: {r:?}"
                    );
                }
            } else {
                let processed: Vec<_> = mine.iter().filter(|r| !r.duplicate).collect();
                assert_eq!(
                    processed.len(),
                    1,
                    "wave {n} {label}: processed exactly once: {mine:?}"
                );
                assert_eq!(processed[0].run.failed(), 0, "{label}: {processed:?}");
            }
        }
    }

    assert_eq!(pretty(&b.iam_state().await), pretty(&a.iam_state().await));
    let (seq, lambda) = (&sequential.engines[0], &lambdas[0].engines[0]);
    assert_eq!(b.records(lambda).await, a.records(seq).await);
    let (done_a, done_b) = (a.done_steps(seq).await, b.done_steps(lambda).await);
    assert_no_step_done_twice(&done_b, "concurrent delivery");
    assert_eq!(done_b, done_a);
    assert_eq!(
        done_a["arn:aws:iam::ACCOUNT:role/ev-role"],
        vec!["notice", "quarantine", "delete"],
        "the waves walk the role down the whole ladder"
    );
    assert_eq!(
        mutation_multiset(&b),
        mutation_multiset(&a),
        "no IAM change made twice"
    );
}

/// The mutating IAM calls of an account, normalised and sorted: `operation target [key]`.
fn mutation_multiset(w: &World) -> Vec<String> {
    let mut out: Vec<String> = w
        .all_requests()
        .iter()
        .filter(|r| r["service"] == "iam")
        .filter(|r| r["operation"].as_str().is_some_and(is_mutating))
        .map(|r| {
            let target = r["RoleName"]
                .as_str()
                .or(r["UserName"].as_str())
                .unwrap_or("?");
            let key = r["AccessKeyId"].as_str().unwrap_or("");
            w.norm(&format!(
                "{} {target} {key}",
                r["operation"].as_str().unwrap()
            ))
        })
        .collect();
    out.sort();
    out
}

async fn evaluate_all(engine: &TestEngine, now: DateTime<Utc>) {
    for (kind, name) in [
        (dormant::domain::PrincipalKind::Role, "c-role-1"),
        (dormant::domain::PrincipalKind::Role, "c-role-2"),
        (dormant::domain::PrincipalKind::Role, "c-role-3"),
        (dormant::domain::PrincipalKind::User, "c-user"),
        (dormant::domain::PrincipalKind::User, "c-key-user"),
    ] {
        let r = engine.evaluate(kind, name, None, now).await.unwrap();
        assert_eq!(r.failed(), 0, "{name}: {r:?}");
    }
}

async fn build_concurrency_world(w: &World) {
    for n in 1..=3 {
        w.role_with("/", &format!("c-role-{n}"), 200, None, &[])
            .await;
    }
    w.user_with("/", "c-user", 400, Some(200), true).await;
    w.key("c-user", "c-user-k1", 300, Some(200), true).await;
    w.key("c-user", "c-user-k2", 300, Some(200), false).await;
    w.user_with("/", "c-key-user", 400, None, false).await;
    w.key("c-key-user", "c-daily", 300, Some(1), true).await;
    w.key("c-key-user", "c-unused", 300, Some(100), true).await;
}

/// Three runs at once on the same identities (two scheduled runs and an event-driven evaluation
/// of each identity, as three Lambda instances would), at every point where a step is due: the
/// same end state as one run at a time, every step done once, and not one IAM change made twice.
#[tokio::test]
async fn concurrent_ticks_and_evaluations_take_each_step_once() {
    let (a, b) = tokio::join!(World::new(), World::new());
    tokio::join!(build_concurrency_world(&a), build_concurrency_world(&b));
    a.forget_requests();
    b.forget_requests();
    let sequential = a.lambda_engine(default_policy()).await;
    let (e1, e2, e3) = (
        b.lambda_engine(default_policy()).await,
        b.lambda_engine(default_policy()).await,
        b.lambda_engine(default_policy()).await,
    );
    // Notice, quarantine (and key deactivation for the key subject), keys, delete roles and the
    // key, delete the user.
    for (n, day) in [0, 7, 14, 23, 30].into_iter().enumerate() {
        let now = a.at(day, 2);
        let run = |e: &'static str, r: dormant::error::Result<dormant::app::output::RunReport>| {
            let r = r.unwrap_or_else(|err| panic!("{e}: {err}"));
            assert_eq!(r.failed(), 0, "{e}: {r:?}");
        };
        if n == 0 {
            run("sequential sweep", sequential.sweep(now).await);
            let (r1, r2, ()) = tokio::join!(e1.sweep(now), e2.sweep(now), evaluate_all(&e3, now));
            run("sweep 1", r1);
            run("sweep 2", r2);
        } else {
            run("sequential tick", sequential.tick(now).await);
            let (r1, r2, ()) = tokio::join!(e1.tick(now), e2.tick(now), evaluate_all(&e3, now));
            run("tick 1", r1);
            run("tick 2", r2);
        }
    }
    assert_eq!(pretty(&b.iam_state().await), pretty(&a.iam_state().await));
    assert_eq!(b.records(&e1).await, a.records(&sequential).await);
    let done = b.done_steps(&e1).await;
    assert_no_step_done_twice(&done, "concurrent runs");
    assert_eq!(done, a.done_steps(&sequential).await);
    assert_eq!(
        done["arn:aws:iam::ACCOUNT:user/c-user"],
        vec!["notice", "quarantine", "deactivate_keys", "delete"]
    );
    assert_eq!(mutation_multiset(&b), mutation_multiset(&a));
}

// =============================================================================================
// 3. Undo under fault
// =============================================================================================

#[derive(Debug, Clone, Copy)]
enum UndoFault {
    /// A fault on the next `count` calls of an IAM operation.
    Iam(&'static str, Fault, u32),
    /// The process dies while that IAM call is on the wire.
    Crash(&'static str),
    /// The `nth` DynamoDB call of that operation is refused.
    Dynamo(&'static str, u32),
}

/// The calls `undo` makes on a user: the fresh read, then the release (quarantine policy, the
/// key dormant turned off, the stage tags).
const UNDO_READS: &[&str] = &[
    "GetUser",
    "ListUserTags",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
    "GetLoginProfile",
    "ListUserPolicies",
];
const UNDO_WRITES: &[&str] = &["DeleteUserPolicy", "UpdateAccessKey", "UntagUser"];

fn undo_cases() -> Vec<UndoFault> {
    let mut cases = Vec::new();
    for op in UNDO_READS {
        cases.push(UndoFault::Iam(op, Fault::AccessDenied, 1));
    }
    for op in UNDO_WRITES {
        cases.push(UndoFault::Iam(op, Fault::AccessDenied, 1));
        cases.push(UndoFault::Iam(op, Fault::Http500, 8));
        cases.push(UndoFault::Crash(op));
    }
    // DynamoDB: the record read, the breaker read, the intent write, the commit, the read-back.
    // (The third PutItem, the audit entry, is the bug test below.)
    cases.push(UndoFault::Dynamo("GetItem", 1));
    cases.push(UndoFault::Dynamo("GetItem", 2));
    cases.push(UndoFault::Dynamo("PutItem", 1));
    cases.push(UndoFault::Dynamo("PutItem", 2));
    cases.push(UndoFault::Dynamo("GetItem", 3));
    cases
}

/// What IAM shows of one undo user: quarantine policy attached, status of the key dormant turned
/// off and of the owner's, and how many stage tags.
async fn undo_user_state(w: &World, name: &str) -> (bool, String, String, usize) {
    let u = w.user_state(name).await.unwrap();
    let policy = u["policies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "DormantQuarantineDenyAll");
    let key = |label: &str| {
        u["keys"][format!("<{label}>")]
            .as_str()
            .unwrap()
            .to_string()
    };
    let stage_tags = u["tags"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("dormant:stage") || k.starts_with("dormant:next-step"))
        .count();
    (
        policy,
        key(&format!("{name}-dormants")),
        key(&format!("{name}-owners")),
        stage_tags,
    )
}

async fn build_undo_user(w: &World, name: &str) {
    w.user_with("/", name, 400, Some(200), true).await;
    w.key(name, &format!("{name}-dormants"), 300, Some(200), true)
        .await;
    w.key(name, &format!("{name}-owners"), 300, Some(200), false)
        .await;
}

/// `undo` of a user with its keys turned off, with a fault on each of its calls in turn. Right
/// after the faulty `undo` the identity is either fully restored and recorded released, or
/// untouched, or carries a pending release intent; never partly restored without one. Then the
/// next tick past the lease (or, alternately and when nothing is pending, a second `undo`)
/// finishes it: fully restored, released, the release recorded done exactly once, and the key its
/// owner turned off never turned on.
#[tokio::test]
async fn undo_with_a_fault_on_each_call_completes_or_leaves_an_intent_that_is_finished() {
    let w = World::new().await;
    let cases = undo_cases();
    let names: Vec<String> = (0..cases.len()).map(|i| format!("undo-{i}")).collect();
    for name in &names {
        build_undo_user(&w, name).await;
    }
    // Quarantining 20 users at once would trip the breaker, which is not under test here.
    let mut policy = default_policy();
    policy.breaker.min_count = 10_000;
    let engine = w.lambda_engine(policy).await;
    for (day, run) in [(0, "sweep"), (7, "tick"), (14, "tick")] {
        let r = if run == "sweep" {
            engine.sweep(w.at(day, 0)).await
        } else {
            engine.tick(w.at(day, 0)).await
        }
        .unwrap();
        assert_eq!(r.failed(), 0, "{r:?}");
    }
    for name in &names {
        assert_eq!(
            undo_user_state(&w, name).await,
            (true, "Inactive".into(), "Inactive".into(), 1),
            "{name} is quarantined with its key turned off"
        );
    }

    for (i, (case, name)) in cases.iter().zip(&names).enumerate() {
        let now = w.at(15, i as i64);
        let subject = Subject::whole(Principal::user(&w.id, "/", name));
        let arg: IdentityArg = format!("user/{name}").parse().unwrap();
        let undo = || engine.undo(&arg, "still needed", now);
        let first = match *case {
            UndoFault::Iam(op, fault, count) => {
                w.fault("iam", op, fault, count);
                Some(undo().await)
            }
            UndoFault::Crash(op) => w.crash_at(op, 0, undo()).await,
            UndoFault::Dynamo(op, nth) => {
                if nth > 1 {
                    w.fault(
                        "dynamodb",
                        op,
                        Fault::Latency(StdDuration::from_millis(1)),
                        nth - 1,
                    );
                }
                w.fault("dynamodb", op, Fault::AccessDenied, 1);
                Some(undo().await)
            }
        };
        w.clear_faults();
        let first = match first {
            None => "crashed".to_string(),
            Some(Ok(r)) => format!("{} ({})", r.outcome.as_str(), r.reason),
            Some(Err(e)) => format!("error: {e}"),
        };
        let what = format!("{case:?} → {first}");

        let record = engine.store.load(&subject).await.unwrap().unwrap();
        let state = undo_user_state(&w, name).await;
        assert_eq!(state.2, "Inactive", "{what}: the owner's key stays off");
        let restored = (false, "Active".to_string(), "Inactive".to_string(), 0);
        let untouched = (true, "Inactive".to_string(), "Inactive".to_string(), 1);
        match (record.stage, &record.pending) {
            (Stage::Released, None) => {
                assert_eq!(
                    state, restored,
                    "{what}: recorded released, so fully restored"
                );
            }
            (Stage::KeysDeactivated, Some(intent)) => {
                assert_eq!(intent.step, Step::Release, "{what}");
            }
            (Stage::KeysDeactivated, None) => {
                assert_eq!(
                    state, untouched,
                    "{what}: changed in IAM, but neither released nor a pending intent says so"
                );
            }
            other => panic!("{what}: unexpected record {other:?}"),
        }

        // Finish: the next run past the lease, or the operator again.
        if record.stage != Stage::Released {
            if record.pending.is_some() && i % 2 == 0 {
                let r = engine.tick(now + Duration::minutes(16)).await.unwrap();
                assert_eq!(r.failed(), 0, "{what}: {r:?}");
            } else {
                let r = engine
                    .undo(&arg, "still needed", now + Duration::minutes(1))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: the second undo: {e}"));
                assert_eq!(r.outcome, Outcome::Done, "{what}: {r:?}");
            }
        }
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Released, "{what}: {record:?}");
        assert!(record.pending.is_none(), "{what}");
        assert!(record.keys_deactivated.is_empty(), "{what}");
        assert_eq!(
            undo_user_state(&w, name).await,
            restored,
            "{what}: fully restored in the end"
        );
        let releases = engine
            .store
            .history(&subject)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.step == "release" && e.outcome == Outcome::Done)
            .count();
        assert_eq!(releases, 1, "{what}: the release is recorded done once");
    }
}

// =============================================================================================
// Bugs found by this suite (see the report): failing tests, ignored until fixed.
// =============================================================================================

/// The `done` audit entry is written after the commit, in a separate write (and, for a
/// quarantine, after the breaker write). When the process dies between the commit and the audit
/// write, or that write fails for good, the step has happened and is committed, but the audit
/// trail never says so: `history` shows no `done` for it, and no later run writes one.
#[tokio::test]
async fn a_failed_audit_write_after_the_commit_loses_the_done_entry() {
    let w = World::new().await;
    w.role_with("/", "crash-after-commit", 200, None, &[]).await;
    w.role_with("/", "audit-refused", 200, None, &[]).await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();

    // The notice of `crash-after-commit` is committed by the second PutItem (the first writes
    // the intent); the process dies while that write is on the wire.
    let r = w
        .crash_in("dynamodb", "PutItem", 1, engine.tick(w.at(7, 0)))
        .await;
    assert!(r.is_none(), "the crash point was reached");
    // `audit-refused`: its quarantine commits, then the third PutItem is refused for good.
    w.fault(
        "dynamodb",
        "PutItem",
        Fault::Latency(StdDuration::from_millis(1)),
        2,
    );
    w.fault("dynamodb", "PutItem", Fault::AccessDenied, 1);
    let _ = engine.tick(w.at(7, 1)).await;
    w.clear_faults();
    for minutes in [20, 40, 60] {
        engine
            .tick(w.at(7, 1) + Duration::minutes(minutes))
            .await
            .unwrap();
    }
    engine.sweep(w.at(8, 0)).await.unwrap();

    for role in ["crash-after-commit", "audit-refused"] {
        let subject = Subject::whole(Principal::role(&w.id, "/", role));
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(
            record.stage,
            Stage::Quarantined,
            "{role}: the step happened"
        );
        assert_eq!(
            steps_done(&engine, &subject).await,
            vec!["notice", "quarantine"],
            "{role}: every step that happened is in the audit trail"
        );
    }
}

/// `handle` claims the event id before processing it. When processing then fails with a
/// retryable error (the Lambda answers `Retryable`, so EventBridge delivers the event again), the
/// redelivery finds the id claimed and is dropped as a duplicate: the nomination is lost until
/// the next sweep.
#[tokio::test]
async fn a_retryable_failure_after_the_claim_makes_the_redelivery_a_no_op() {
    let w = World::new().await;
    w.role_with("/", "nominated", 200, None, &[]).await;
    let fleet = w.fleet(default_policy()).await;
    let mut event = fixture("access-analyzer-unused-role.json");
    event["id"] = Value::from("aa-retry-1");
    event["detail"]["resource"] = Value::from(format!("arn:aws:iam::{}:role/nominated", w.id));
    event["detail"]["accountId"] = Value::from(w.id.clone());
    let now = w.at(0, 0);

    // IAM is unavailable for longer than the retries last.
    w.fault("iam", "GetRole", Fault::Http500, 8);
    let err = handle_event(&event, &fleet, &rules(), None, now)
        .await
        .expect_err("GetRole keeps failing");
    assert!(
        err.is_retryable(),
        "{err}: EventBridge will deliver it again"
    );
    w.clear_faults();

    let again = handle_event(&event, &fleet, &rules(), None, now + Duration::minutes(1))
        .await
        .unwrap();
    assert!(
        !again.duplicate,
        "the retry of an event that was never processed must be processed: {again:?}"
    );
    let record = fleet.engines[0]
        .store
        .load(&Subject::whole(Principal::role(&w.id, "/", "nominated")))
        .await
        .unwrap();
    assert_eq!(record.map(|r| r.stage), Some(Stage::Noticed));
}

/// A delete whose `DeleteRole` reached IAM but whose run died before the commit: the next run
/// re-runs the intent from its first effect, `TakeSnapshot`, which reads the role, gets
/// `NoSuchEntity` and fails the step. Every later run does the same: the record keeps its pending
/// delete for ever and a `Remediation Failed` goes out each time.
#[tokio::test]
async fn an_interrupted_delete_is_completed_by_the_next_run() {
    let w = World::new().await;
    w.role_with("/", "half-deleted", 200, None, &[]).await;
    w.user_with("/", "half-deleted-user", 400, Some(200), true)
        .await;
    w.key("half-deleted-user", "hd-k", 300, Some(200), true)
        .await;
    let engine = w.lambda_engine(default_policy()).await;
    for (day, hour) in [(0, 0), (7, 0), (14, 0)] {
        engine.sweep(w.at(day, hour)).await.unwrap();
    }
    assert!(w
        .crash_at("DeleteRole", 0, engine.tick(w.at(23, 0)))
        .await
        .is_none());
    assert!(w
        .crash_at("DeleteUser", 0, engine.tick(w.at(30, 0)))
        .await
        .is_none());
    for (kind, name) in [("role", "half-deleted"), ("user", "half-deleted-user")] {
        assert!(
            w.iam_state().await.get(format!("{kind}/{name}")).is_none(),
            "{name}: the delete request landed before the crash"
        );
    }

    let r = engine.tick(w.at(30, 1)).await.unwrap();
    assert_eq!(
        r.failed(),
        0,
        "the next run past the lease completes both: {r:?}"
    );
    for subject in [
        Subject::whole(Principal::role(&w.id, "/", "half-deleted")),
        Subject::whole(Principal::user(&w.id, "/", "half-deleted-user")),
    ] {
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Deleted, "{subject}");
        assert!(record.pending.is_none(), "{subject}");
        assert!(engine
            .store
            .latest_snapshot(&subject)
            .await
            .unwrap()
            .is_some());
    }
}

/// The same resumption while the identity still exists: a delete interrupted half-way through
/// the teardown (after the inline policies were deleted and the managed policy detached) takes a
/// second snapshot of the half-torn-down role when resumed. `restore` uses the latest snapshot,
/// so the role comes back without the policies the first attempt had already removed.
#[tokio::test]
async fn a_resumed_delete_keeps_the_snapshot_taken_before_the_teardown() {
    let w = World::new().await;
    w.role_with("/", "well-equipped", 200, None, &[]).await;
    let policy_arn = w.create_policy("reports-read", ALLOW_S3).await;
    w.attach_role_policy("well-equipped", &policy_arn).await;
    w.put_role_policy(
        "well-equipped",
        "app-inline",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*"}]}"#,
    )
    .await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    engine.tick(w.at(7, 0)).await.unwrap();
    // Inline policies are deleted, then the managed policy detached: die while detaching.
    assert!(w
        .crash_at("DetachRolePolicy", 0, engine.tick(w.at(23, 0)))
        .await
        .is_none());
    let r = engine.tick(w.at(23, 1)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    let subject = Subject::whole(Principal::role(&w.id, "/", "well-equipped"));
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Deleted
    );

    let report = engine
        .restore(
            &"role/well-equipped".parse().unwrap(),
            "needed again",
            w.at(24, 0),
        )
        .await
        .unwrap();
    let inline = w.role_policies("well-equipped").await;
    let attached = w.attached_role_policies("well-equipped").await;
    assert_eq!(inline, vec!["app-inline".to_string()], "{report:?}");
    assert_eq!(attached, vec![policy_arn], "{report:?}");
}

/// A quarantine dies after its deny policy landed; while its intent is pending the owner tags
/// one role exempt and uses another. The next run past the lease rolls both half-done steps back
/// instead of finishing them, and the run after that changes nothing more.
#[tokio::test]
async fn an_exemption_and_a_fresh_use_that_arrive_while_a_step_is_pending_win() {
    let w = World::new().await;
    w.role_with("/", "pending-exempt", 200, None, &[]).await;
    w.role_with("/", "pending-used", 200, None, &[]).await;
    let engine = w.lambda_engine(default_policy()).await;
    engine.sweep(w.at(0, 0)).await.unwrap();
    for name in ["pending-exempt", "pending-used"] {
        // Die while tagging, after the deny policy was attached.
        let crashed = w
            .crash_at(
                "TagRole",
                0,
                engine.evaluate(PrincipalKind::Role, name, None, w.at(7, 0)),
            )
            .await;
        assert!(crashed.is_none(), "{name}: the crash point was reached");
        assert_eq!(
            w.iam_state().await[format!("role/{name}")]["policies"],
            serde_json::json!(["DormantQuarantineDenyAll"]),
            "{name}"
        );
    }
    assert!(emulator().faults(&w.id).is_empty(), "both crashes fired");
    owner_act(
        &w,
        Act::OwnerExempts("pending-exempt"),
        w.at(7, 0) + Duration::minutes(5),
    )
    .await;
    owner_act(
        &w,
        Act::RoleUsed("pending-used"),
        w.at(7, 0) + Duration::minutes(5),
    )
    .await;

    let r = engine.tick(w.at(7, 1)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    for (name, stage) in [
        ("pending-exempt", Stage::Exempt),
        ("pending-used", Stage::Released),
    ] {
        let subject = Subject::whole(Principal::role(&w.id, "/", name));
        let record = engine.store.load(&subject).await.unwrap().unwrap();
        assert_eq!(record.stage, stage, "{name}: {}", record.reason);
        assert!(record.pending.is_none(), "{name}");
        assert_eq!(
            w.iam_state().await[format!("role/{name}")]["policies"],
            serde_json::json!([]),
            "{name}: the half-done quarantine is rolled back"
        );
        let done = w.done_steps(&engine).await;
        assert!(
            !done[&format!("arn:aws:iam::ACCOUNT:role/{name}")].contains(&"quarantine".to_string()),
            "{name}: {done:?}"
        );
    }
    emulator().clear_requests(&w.id);
    let again = engine.sweep(w.at(8, 0)).await.unwrap();
    assert!(again.actions.is_empty(), "converged: {again:?}");
}
