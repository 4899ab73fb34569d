#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; the schedule is relative to one shared instant
//! The seeded chaos run (reliability, issue 9; made to prove its faults fire, issue 21).
//!
//! One account with a mix of identities lives through a month of sweeps, ticks, owner actions and
//! an operator `undo`, once without faults (the reference) and once per seed with faults
//! (throttling, HTTP 500, AccessDenied, latency on IAM, DynamoDB and EventBridge), simulated
//! crashes and refused writes, all chosen from the requests the reference made at that step and
//! narrowed to one identity's requests (`support::chaos_plan`). Every seed crashes inside a
//! delete and inside the undo, and refuses the state write that commits a step.
//!
//! A fault not hit in its step stays queued (set aside while an owner acts) until a later run
//! hits it; after the schedule, runs spaced further and further apart go on until every fault
//! and crash has been hit, and the seed fails if one never is. Then, without faults and past the
//! intent lease and the longest backoff, IAM and DynamoDB must be where the reference ended,
//! every step recorded done exactly as in the reference, and the protected and exempt roles
//! never touched. Each seed prints what it hit.
//!
//! `DORMANT_CHAOS_SEEDS=N` runs N more seeds (default [`DEFAULT_MORE_SEEDS`]);
//! `DORMANT_CHAOS_VERBOSE=1` prints each seed's journal. A failure names its seed and journal.
//!
//! How a crash is simulated: [`World::arm_crash`] has the emulator hold one request on the wire;
//! the run is dropped as soon as that request has reached the emulator, and the held request is
//! then carried out. That is what a Lambda timeout or a killed process does: the request already
//! sent lands, nothing after it runs; Lambda then retries the invocation after 1 and 3 minutes
//! (`retryAttempts: 2` in the CDK app). A refusal (`AccessDenied` on that request) is not a
//! crash: the engine sees the error and records a failure.
//!
//! A seed's run is the same every time: the plan depends only on the seed and the reference's
//! requests (sorted, each identity's in their order), and every identity-specific fault and
//! crash counts only that identity's (or item's, or key's) requests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use dormant::domain::{IdentityArg, Outcome};
use dormant::error::Error;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::support::account::TestEngine;
use crate::support::chaos_plan::{hit, plan, principal_name, tally, Injection, RefCall, RefStep};
use crate::support::chaos_story::{
    build_chaos_world, chaos_policy, owner_act, schedule, Act, DAYS, EXEMPT_ROLE, PROTECTED_ROLE,
};
use crate::support::emulated_world::{assert_no_step_done_twice, pretty, Call, World};
use crate::support::emulator::Fault;

/// Seeds of the default run.
const SEEDS: [u64; 3] = [0x00C0_FFEE, 0x0BAD_F00D, 0x5EED_0003];

/// How many more seeds `chaos_more_seeds_from_env` runs when `DORMANT_CHAOS_SEEDS` is not set
/// (what CI runs: two batches of three, a few minutes on two cores), and how many at once.
const DEFAULT_MORE_SEEDS: u64 = 6;
const SEEDS_AT_ONCE: usize = 3;

/// What a run ended with, comparable across accounts.
#[derive(Debug, Clone)]
struct EndState {
    iam: Value,
    records: BTreeMap<String, Value>,
    done: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Reference {
    end: EndState,
    /// The requests the reference made at each step of the schedule.
    steps: Vec<RefStep>,
}

/// The reference run is the same for every seed: computed once per test binary.
async fn reference() -> &'static Reference {
    static REFERENCE: OnceCell<Reference> = OnceCell::const_new();
    REFERENCE
        .get_or_init(|| async {
            let run = Box::pin(run_world(None)).await;
            Reference {
                end: run.end,
                steps: run.steps,
            }
        })
        .await
}

/// After the schedule, while faults are left: runs further and further apart (minutes after
/// day 30, 20:00), so that a step backing off after a failure is tried again.
const DRAIN: [(i64, Act); 9] = [
    (0, Act::Tick),
    (20, Act::Tick),
    (40, Act::Sweep),
    (80, Act::Tick),
    (160, Act::Tick),
    (320, Act::Sweep),
    (640, Act::Tick),
    (1280, Act::Tick),
    (2560, Act::Sweep),
];

/// Then, without faults, the same for every seed: past the 15-minute intent lease and the
/// longest backoff (a day). Minutes after the drain's last slot.
const CONVERGE: [(i64, Act); 9] = [
    (60, Act::Tick),
    (80, Act::Tick),
    (100, Act::Sweep),
    (120, Act::Tick),
    (240, Act::Tick),
    (480, Act::Tick),
    (960, Act::Tick),
    (1500, Act::Tick),
    (1520, Act::Sweep),
];

/// One seed's (or the reference's) run, as it goes.
struct Run<'a> {
    w: &'a World,
    engine: TestEngine,
    seed: Option<u64>,
    /// Crashes armed and not yet hit.
    armed: Vec<Call>,
    journal: Vec<String>,
    /// Faults queued: requests to fail or slow, by service.
    faulted: BTreeMap<String, u64>,
    faults: usize,
    /// Where each crash and each refusal hit.
    crashes: Vec<String>,
    refusals: Vec<String>,
    /// Refusals queued and not yet hit.
    refusing: Vec<Call>,
}

/// What a run returns.
struct Ran {
    end: EndState,
    steps: Vec<RefStep>,
    journal: Vec<String>,
    summary: String,
}

impl Run<'_> {
    fn context(&self) -> String {
        format!(
            "seed {}; what happened:\n{}",
            self.seed.map_or("reference".into(), |s| format!("{s:#x}")),
            self.journal.join("\n")
        )
    }

    fn inject(&mut self, injection: &Injection, at: &str) {
        let w = self.w;
        // The plan names the reference's account and keys; this account has its own.
        let local = |call: &Call| Call {
            target: call.target.as_ref().map(|t| w.denorm(t)),
            ..call.clone()
        };
        match injection {
            Injection::Fault { call, fault, count } => {
                let call = &local(call);
                // One fault per call at a time: a seed's run may make this call fewer times than
                // the reference (a step pushed back by a fault), and a second fault queued behind
                // the first could wait for ever.
                if w.faults_left().iter().any(|f| call.is_aimed_at_by(f)) {
                    self.journal.push(format!(
                        "{at} not queued, a fault on it is still queued: {injection}"
                    ));
                    return;
                }
                w.fault_on(call, *fault, *count);
                *self.faulted.entry(call.service.clone()).or_default() += u64::from(*count);
                self.faults += 1;
            }
            Injection::Crash { call, skip, .. } => {
                let call = &local(call);
                w.arm_crash(call, *skip);
                self.armed.push(call.clone());
            }
            Injection::Refusal { call, skip, .. } => {
                let call = &local(call);
                if *skip > 0 {
                    w.fault_on(
                        call,
                        Fault::Latency(std::time::Duration::from_millis(1)),
                        *skip,
                    );
                }
                w.fault_on(call, Fault::AccessDenied, 1);
                self.refusing.push(call.clone());
            }
        }
        self.journal.push(format!("{at} {injection}"));
    }

    /// The armed crashes a run just hit: recorded and disarmed.
    fn crashed(&mut self, at: &str) -> String {
        let (hit, left): (Vec<Call>, Vec<Call>) = std::mem::take(&mut self.armed)
            .into_iter()
            .partition(|c| !self.w.crash_armed(c));
        self.armed = left;
        let names: Vec<String> = hit.iter().map(ToString::to_string).collect();
        for n in &names {
            self.crashes.push(format!("{n} at {at}"));
        }
        names.join(", ")
    }

    /// A system act under the armed crashes, with what it hit; a line for the journal.
    async fn act(&mut self, act: Act, now: DateTime<Utc>, at: &str) -> String {
        let before = tally(&self.w.faults_left());
        let line = match act {
            Act::Undo(name) => Box::pin(self.operator_undo(name, now, at)).await,
            Act::Sweep | Act::Tick => {
                // A crashed (timed-out) invocation is retried by Lambda after 1 and 2 minutes
                // (`retryAttempts: 2` in the CDK app).
                let mut lines = Vec::new();
                for retry in [0, 1, 3] {
                    let armed = self.armed.clone();
                    let when = now + Duration::minutes(retry);
                    let run = scheduled_run(&self.engine, act, when, self.seed.is_none());
                    match self.w.until_crash(&armed, run).await {
                        Some(line) => {
                            lines.push(line);
                            break;
                        }
                        None => lines.push(format!("{act:?}: crashed at {}", self.crashed(at))),
                    }
                }
                lines.join("; Lambda retries: ")
            }
            _ => unreachable!("not a system act"),
        };
        assert!(
            self.armed.iter().all(|c| self.w.crash_armed(c)),
            "a crash point was reached but the run went on; {}",
            self.context()
        );
        let hits = hit(&before, &tally(&self.w.faults_left()));
        // No other fault is planned on a refused call: its AccessDenied is the refusal.
        let (refused, waiting): (Vec<Call>, Vec<Call>) = std::mem::take(&mut self.refusing)
            .into_iter()
            .partition(|c| hits.contains_key(&format!("{c} access_denied")));
        self.refusing = waiting;
        for c in refused {
            self.refusals.push(format!("{c} at {at}"));
        }
        if !hits.is_empty() {
            self.journal.push(format!("{at}   hit {hits:?}"));
        }
        line
    }

    /// What an operator does: run `undo`; run it again a minute later if it crashed or errored
    /// before getting anywhere, after the lease if another run holds the identity; stop once it
    /// says done, failed (the engine finishes it) or refused.
    async fn operator_undo(&mut self, name: &str, now: DateTime<Utc>, at: &str) -> String {
        let arg: IdentityArg = format!("role/{name}").parse().unwrap();
        let mut seen = Vec::new();
        let mut when = now;
        for _ in 0..6 {
            let armed = self.armed.clone();
            let undo = self
                .engine
                .undo(&arg, "operator: the role is still needed", when);
            match self.w.until_crash(&armed, undo).await {
                None => seen.push(format!("undo crashed at {}", self.crashed(at))),
                Some(Ok(r)) => {
                    seen.push(format!("undo {}: {}", r.outcome.as_str(), r.reason));
                    break;
                }
                Some(Err(e @ Error::Refused(_))) => {
                    seen.push(format!("undo refused: {e}"));
                    break;
                }
                Some(Err(e @ Error::Rejected(_))) => {
                    seen.push(format!("undo rejected: {e}"));
                    when += Duration::minutes(15);
                }
                Some(Err(e)) => seen.push(format!("undo error: {e}")),
            }
            when += Duration::minutes(1);
        }
        if self.seed.is_none() {
            assert!(seen[0].starts_with("undo done"), "{seen:?}");
        }
        format!("undo {name}: {seen:?}")
    }
}

/// A sweep or tick; a line for the journal. In the reference every run must succeed.
async fn scheduled_run(
    engine: &TestEngine,
    act: Act,
    now: DateTime<Utc>,
    reference: bool,
) -> String {
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

/// Lives through the schedule in a fresh account: the reference (`None`), or a seed against it.
async fn run_world(seed: Option<(u64, &Reference)>) -> Ran {
    let w = World::new().await;
    build_chaos_world(&w).await;
    w.forget_requests();
    let plan = seed.map(|(s, r)| plan(s, &r.steps)).unwrap_or_default();
    let mut run = Run {
        w: &w,
        engine: w.lambda_engine(chaos_policy()).await,
        seed: seed.map(|(s, _)| s),
        armed: Vec::new(),
        journal: Vec::new(),
        faulted: BTreeMap::new(),
        faults: 0,
        crashes: Vec::new(),
        refusals: Vec::new(),
        refusing: Vec::new(),
    };
    let mut steps = Vec::new();

    for (i, (day, hour, act)) in schedule().into_iter().enumerate() {
        let now = w.at(day, hour);
        let at = format!("d{day}h{hour}");
        if !act.is_system() {
            // The owners' own calls are not what is under test.
            let parked = w.park_faults();
            owner_act(&w, act, now).await;
            w.unpark_faults(&parked);
            w.drain_requests();
            steps.push(RefStep {
                calls: None,
                is_undo: false,
                released: BTreeSet::new(),
                deleted: BTreeSet::new(),
            });
            continue;
        }
        for injection in plan.get(i).into_iter().flatten() {
            run.inject(injection, &at);
        }
        let line = Box::pin(run.act(act, now, &at)).await;
        run.journal.push(format!("{at} {line}"));
        let mut calls: Vec<RefCall> = w
            .drain_requests()
            .iter()
            .map(|r| RefCall::of(r, &w))
            .collect();
        // Identities worked on at once interleave their requests differently from run to run;
        // each one's own stay in order (the sort is stable), so a plan is the same every time.
        calls.sort_by(|a, b| a.call.cmp(&b.call));
        // The journal line lists what the run did: `"release done role/NAME"`.
        let did = |step: &str| {
            line.split('"')
                .filter_map(|a| a.strip_prefix(&format!("{step} done ")))
                .filter_map(|id| principal_name(&format!(":{id}")))
                .collect()
        };
        let (released, deleted) = (did("release"), did("delete"));
        steps.push(RefStep {
            calls: Some(calls),
            is_undo: matches!(act, Act::Undo(_)),
            released,
            deleted,
        });
    }

    // Faults still queued are hit by later runs; one never hit fails the seed.
    let end = w.at(DAYS, 20);
    for (minutes, act) in DRAIN {
        if w.faults_left().is_empty() {
            break;
        }
        let at = format!("drain +{minutes}min");
        let line = Box::pin(run.act(act, end + Duration::minutes(minutes), &at)).await;
        run.journal.push(format!("{at} {line}"));
    }
    assert_eq!(
        tally(&w.faults_left()),
        BTreeMap::new(),
        "faults and crashes never hit; {}",
        run.context()
    );

    // Without faults, past the lease and the longest backoff: none of these runs may fail.
    let start = end + Duration::minutes(DRAIN[DRAIN.len() - 1].0);
    for (minutes, act) in CONVERGE {
        let at = format!("converge +{minutes}min");
        let line = Box::pin(scheduled_run(
            &run.engine,
            act,
            start + Duration::minutes(minutes),
            false,
        ))
        .await;
        let failed = line.contains(" failed ") || line.contains("error");
        run.journal.push(format!("{at} {line}"));
        assert!(
            !failed,
            "a run after the faults stopped failed; {}",
            run.context()
        );
    }

    for name in [PROTECTED_ROLE, EXEMPT_ROLE] {
        assert_eq!(
            w.mutating_calls_on(name),
            Vec::<String>::new(),
            "{name} must never see a mutating call; {}",
            run.context()
        );
    }
    let summary = summary(&run);
    let end = EndState {
        iam: w.iam_state().await,
        records: w.records(&run.engine).await,
        done: w.done_steps(&run.engine).await,
    };
    Ran {
        end,
        steps,
        journal: run.journal,
        summary,
    }
}

/// One line per seed: what it hit (everything it queued, or it would have failed).
fn summary(run: &Run) -> String {
    let by_service: Vec<String> = run
        .faulted
        .iter()
        .map(|(service, n)| format!("{service} {n}"))
        .collect();
    format!(
        "{} faults hit ({} requests failed or slowed: {}), {} crashes hit ({}), {} writes refused ({})",
        run.faults,
        run.faulted.values().sum::<u64>(),
        by_service.join(", "),
        run.crashes.len(),
        run.crashes.join("; "),
        run.refusals.len(),
        run.refusals.join("; "),
    )
}

/// Runs one seed and compares it with the reference.
async fn chaos_seed(seed: u64) {
    let reference = reference().await;
    let ran = Box::pin(run_world(Some((seed, reference)))).await;
    let context = || format!("seed {seed:#x}; what happened:\n{}", ran.journal.join("\n"));
    // Not eprintln!: libtest would swallow it for a passing test; this is the run's log.
    let _ = writeln!(std::io::stderr(), "chaos seed {seed:#x}: {}", ran.summary);
    if std::env::var_os("DORMANT_CHAOS_VERBOSE").is_some() {
        let _ = writeln!(std::io::stderr(), "{}", context());
    }
    assert!(
        !ran.summary.starts_with("0 faults") && !ran.summary.contains(" 0 crashes"),
        "every seed hits faults and crashes: {}; {}",
        ran.summary,
        context()
    );
    assert_eq!(
        pretty(&ran.end.iam),
        pretty(&reference.end.iam),
        "(a) IAM end state differs from the reference; {}",
        context()
    );
    assert_eq!(
        ran.end.records,
        reference.end.records,
        "(a) DynamoDB records differ from the reference; {}",
        context()
    );
    assert_no_step_done_twice(&ran.end.done, &context());
    assert_eq!(
        ran.end.done,
        reference.end.done,
        "(b) the steps recorded done differ from the reference; {}",
        context()
    );
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

/// `DORMANT_CHAOS_SEEDS=N` runs N more seeds ([`DEFAULT_MORE_SEEDS`] when unset, so CI runs
/// them; `0` runs none), [`SEEDS_AT_ONCE`] at a time; `DORMANT_CHAOS_SEED_BASE` picks where they
/// start (default 1000). A value that is not a number is an error, not zero seeds.
#[tokio::test]
async fn chaos_more_seeds_from_env() {
    let n = env_number("DORMANT_CHAOS_SEEDS", DEFAULT_MORE_SEEDS);
    let base = env_number("DORMANT_CHAOS_SEED_BASE", 1000);
    futures::stream::iter(base..base + n)
        .for_each_concurrent(SEEDS_AT_ONCE, chaos_seed)
        .await;
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => default,
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number of seeds: {e}")),
        Err(e) => panic!("{name}: {e}"),
    }
}
