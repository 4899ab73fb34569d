//! What the seeded chaos run (`tests/chaos.rs`) does to one seed's account: the faults, crashes
//! and refusals for each step of its schedule, chosen from the requests the fault-free reference
//! made at that step, and a tally of what was hit.
//!
//! The plan is a pure function of the seed and the reference, so a seed always gets the same
//! plan. Every fault and crash is narrowed to one identity's (or one item's) requests
//! ([`Call`]): where it lands does not depend on how concurrently processed identities
//! interleave. A fault not hit in its step stays queued until a later run hits it, and the run
//! fails if one is never hit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration as StdDuration;

use serde_json::Value;

use super::emulated_world::{is_mutating, Call, Rng, World, CRASH_HOLD};
use super::emulator::Fault;

/// One request of the reference run, as a fault can name it.
#[derive(Debug, Clone)]
pub struct RefCall {
    pub call: Call,
    /// An IAM call that changes something.
    pub mutating: bool,
    /// The role or user it is about, if any.
    pub about: Option<String>,
}

impl RefCall {
    /// From a request log entry of `w`, with the account and key ids in it normalised.
    pub fn of(request: &Value, w: &World) -> Self {
        let mut call = Call::of(request);
        call.target = call.target.map(|t| w.norm(&t));
        let mutating = call.service == "iam" && is_mutating(&call.operation);
        let about = match (request["pk"].as_str(), &call.target) {
            (Some(pk), _) => principal_name(pk.rsplit('#').next().unwrap_or("")),
            // A key's own calls name only the key.
            (None, Some(t)) if t.starts_with('<') => w.user_of_key(t),
            (None, t) => t.clone(),
        };
        RefCall {
            call,
            mutating,
            about,
        }
    }

    /// What a crash or a refusal may hit: a write that is part of a step (an IAM change, or a
    /// DynamoDB write of an identity's items: intent, done entry, commit, snapshot).
    fn disruptable(&self) -> bool {
        self.mutating
            || (self.call.operation == "PutItem"
                && self
                    .call
                    .target
                    .as_deref()
                    .is_some_and(|t| t.starts_with("ID#")))
    }
}

/// The role or user name in a subject id (`arn:aws:iam::ACCOUNT:user/staff/jo/key/AKIA…` →
/// `jo`).
pub fn principal_name(subject_id: &str) -> Option<String> {
    let (_, rest) = subject_id
        .split_once(":role/")
        .or(subject_id.split_once(":user/"))?;
    let principal = rest
        .split_once("/key/")
        .map_or(rest, |(p, _)| p)
        .trim_end_matches("/password");
    principal.rsplit('/').next().map(str::to_string)
}

/// What the reference did at one step of the schedule.
#[derive(Debug, Clone)]
pub struct RefStep {
    /// `None` for an owner's act (not under test: no faults).
    pub calls: Option<Vec<RefCall>>,
    pub is_undo: bool,
    /// Roles and users the reference released at this step (by name). A seed's run may release
    /// them earlier (a step of theirs pending when the owner used or exempted them is rolled
    /// back by the next tick instead of the next sweep), so their requests here may never come:
    /// no fault aims at them.
    pub released: BTreeSet<String>,
    /// Roles and users (or their credentials) the reference deleted at this step. A sweep reads
    /// back the record of each principal it evaluated; a seed's run may delete it in a tick
    /// instead, which does not: no fault aims at those reads.
    pub deleted: BTreeSet<String>,
}

impl RefStep {
    /// The requests faults may aim at: those a seed's run is sure to make at this step or later.
    fn sure(&self) -> Vec<RefCall> {
        let calls = self.calls.as_deref().unwrap_or_default();
        calls
            .iter()
            .filter(|c| self.is_undo || c.about.as_ref().is_none_or(|a| !self.released.contains(a)))
            .filter(|c| {
                c.call.operation != "GetItem"
                    || c.about.as_ref().is_none_or(|a| !self.deleted.contains(a))
            })
            // A step's events go out with the run's others; a run that only releases may have none.
            .filter(|c| c.call.service != "events" || self.released.is_empty())
            .cloned()
            .collect()
    }
}

#[derive(Debug, Clone)]
pub enum Injection {
    /// A fault on the next `count` requests that are `call`.
    Fault {
        call: Call,
        fault: Fault,
        count: u32,
    },
    /// The process dies while request number `skip + 1` that is `call` is on the wire.
    Crash {
        call: Call,
        skip: u32,
        why: &'static str,
    },
    /// Request number `skip + 1` that is `call` is refused (AccessDenied).
    Refusal {
        call: Call,
        skip: u32,
        why: &'static str,
    },
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injection::Fault { call, fault, count } => write!(f, "fault {call} {fault:?} x{count}"),
            Injection::Crash { call, skip, why } => {
                write!(f, "crash while {call} #{} is on the wire ({why})", skip + 1)
            }
            Injection::Refusal { call, skip, why } => {
                write!(f, "refuse {call} #{} ({why})", skip + 1)
            }
        }
    }
}

/// The injections for each step of the schedule (by index).
///
/// Crashes and refusals are planned first; no other fault is put on a call one of them aims at
/// (it could shift which request the crash hits, or be left with no request to hit after a
/// crash ended the identity's life). Other faults are hit by one request of their call and its
/// retries, at most one per call and step; the run skips one whose call still has a fault
/// queued (see `tests/chaos.rs`), as that could wait for a request that never comes.
pub fn plan(seed: u64, steps: &[RefStep]) -> Vec<Vec<Injection>> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<Vec<Injection>> = vec![Vec::new(); steps.len()];
    let mut disrupted: BTreeSet<Call> = BTreeSet::new();
    for (i, step) in steps.iter().enumerate() {
        let calls = step.sure();
        if calls.iter().any(|c| c.mutating) && rng.chance(35) {
            let d = disruption(
                &mut rng,
                &calls,
                &mut disrupted,
                RefCall::disruptable,
                "random",
            );
            out[i].extend(d);
        }
    }
    // What every seed does, at a step of its choosing: crash inside a delete, crash or refuse a
    // call of the operator's undo, and refuse the state write that commits a step.
    let deletes: Vec<usize> = indices(steps, |s: &[RefCall]| {
        s.iter()
            .any(|c| matches!(c.call.operation.as_str(), "DeleteRole" | "DeleteUser"))
    });
    if let Some(&i) = pick_opt(&mut rng, &deletes) {
        let calls = &steps[i].sure();
        // The teardown: every IAM change of the identity being deleted.
        let deleted: BTreeSet<&str> = calls
            .iter()
            .filter(|c| matches!(c.call.operation.as_str(), "DeleteRole" | "DeleteUser"))
            .filter_map(|c| c.call.target.as_deref())
            .collect();
        let inside = |c: &RefCall| {
            c.mutating
                && c.call
                    .target
                    .as_deref()
                    .is_some_and(|t| deleted.contains(t))
        };
        let d = crash_in(&mut rng, calls, &mut disrupted, inside, "inside a delete");
        out[i].extend(d);
    }
    if let Some(i) = steps.iter().position(|s| s.is_undo) {
        let calls = &steps[i].sure();
        let d = disruption(
            &mut rng,
            calls,
            &mut disrupted,
            RefCall::disruptable,
            "inside undo",
        );
        out[i].extend(d);
    }
    let commits: Vec<usize> = indices(steps, |s: &[RefCall]| {
        commits_of(s).any(|(call, _)| !disrupted.contains(&call))
    });
    if let Some(&i) = pick_opt(&mut rng, &commits) {
        let calls = &steps[i].sure();
        let targets: Vec<(Call, u32)> = commits_of(calls)
            .filter(|(call, _)| !disrupted.contains(call))
            .collect();
        let (call, skip) = rng.pick(&targets).clone();
        disrupted.insert(call.clone());
        out[i].push(Injection::Refusal {
            call,
            skip,
            why: "the state write of a commit",
        });
    }

    for (i, step) in steps.iter().enumerate() {
        let calls = step.sure();
        let open: Vec<RefCall> = calls
            .iter()
            .filter(|c| !disrupted.contains(&c.call))
            .cloned()
            .collect();
        let busy = calls.iter().any(|c| c.mutating);
        if open.is_empty() || !rng.chance(if busy { 70 } else { 25 }) {
            continue;
        }
        // One fault per call and step: a second could wait for a request that never comes.
        // One that stops what it hits (AccessDenied, HTTP 500 past the retries) per step: a
        // second, behind the first, would push the step back by another run.
        let mut aimed: BTreeSet<Call> = BTreeSet::new();
        let mut stops = 0;
        let mut faults = Vec::new();
        for _ in 0..rng.range(1, if busy { 3 } else { 1 }) {
            let (call, fault, count) = random_fault(&mut rng, &open);
            let stop = fault == Fault::AccessDenied || (fault == Fault::Http500 && count > 5);
            if stop && stops > 0 {
                continue;
            }
            if aimed.insert(call.clone()) {
                stops += usize::from(stop);
                faults.push(Injection::Fault { call, fault, count });
            }
        }
        // Before the crash or refusal of the step, so they are logged in the order they act.
        faults.append(&mut out[i]);
        out[i] = faults;
    }
    out
}

/// Per identity with two state writes in the step (its intent, then the commit): the last one,
/// as `(call, earlier writes of it in the step)`.
fn commits_of(calls: &[RefCall]) -> impl Iterator<Item = (Call, u32)> + '_ {
    let mut writes: BTreeMap<&Call, u32> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.call.is_state_write()) {
        *writes.entry(&c.call).or_default() += 1;
    }
    writes
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .map(|(call, n)| (call.clone(), n - 1))
}

fn indices(steps: &[RefStep], f: impl Fn(&[RefCall]) -> bool) -> Vec<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| f(&s.sure()))
        .map(|(i, _)| i)
        .collect()
}

fn pick_opt<'a, T>(rng: &mut Rng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| rng.pick(items))
}

/// A random fault on one of the requests the reference made at this step.
fn random_fault(rng: &mut Rng, calls: &[RefCall]) -> (Call, Fault, u32) {
    let call = rng.pick(calls).call.clone();
    let latency = |rng: &mut Rng| Fault::Latency(StdDuration::from_millis(rng.range(10, 120)));
    // Each fault is hit by the first request of its call (and that call's own retries): the
    // adapters retry 5 times, so 6 HTTP 500s fail the call with none left over.
    let (fault, count) = match rng.below(4) {
        0 => (Fault::Throttle, rng.range(1, 3)),
        1 => (Fault::Http500, rng.range(1, 6)),
        2 => (Fault::AccessDenied, 1),
        _ => (latency(rng), 1),
    };
    (call, fault, count as u32)
}

/// A crash or a refusal (even odds) at one of the step's writes that `eligible` allows.
fn disruption(
    rng: &mut Rng,
    calls: &[RefCall],
    disrupted: &mut BTreeSet<Call>,
    eligible: impl Fn(&RefCall) -> bool,
    why: &'static str,
) -> Option<Injection> {
    if rng.chance(50) {
        crash_in(rng, calls, disrupted, eligible, why)
    } else {
        let (call, skip) = nth(rng, calls, disrupted, eligible)?;
        Some(Injection::Refusal { call, skip, why })
    }
}

/// A crash at one eligible request.
fn crash_in(
    rng: &mut Rng,
    calls: &[RefCall],
    disrupted: &mut BTreeSet<Call>,
    eligible: impl Fn(&RefCall) -> bool,
    why: &'static str,
) -> Option<Injection> {
    let (call, skip) = nth(rng, calls, disrupted, eligible)?;
    Some(Injection::Crash { call, skip, why })
}

/// One of the eligible requests, as `(call, earlier requests of that call in the step)`; never
/// a call already disrupted in this seed (two crashes on one call could not be told apart).
fn nth(
    rng: &mut Rng,
    calls: &[RefCall],
    disrupted: &mut BTreeSet<Call>,
    eligible: impl Fn(&RefCall) -> bool,
) -> Option<(Call, u32)> {
    let positions: Vec<usize> = (0..calls.len())
        .filter(|&i| eligible(&calls[i]) && !disrupted.contains(&calls[i].call))
        .collect();
    let &n = pick_opt(rng, &positions)?;
    let call = calls[n].call.clone();
    let skip = calls[..n].iter().filter(|c| c.call == call).count() as u32;
    disrupted.insert(call.clone());
    Some((call, skip))
}

/// Queued faults by what they do, with how many requests each still has to hit.
pub fn tally(faults: &[Value]) -> BTreeMap<String, u64> {
    let hold = u64::try_from(CRASH_HOLD.as_millis()).unwrap();
    let mut out = BTreeMap::new();
    for f in faults {
        let mut what = format!(
            "{}:{}",
            f["service"].as_str().unwrap_or("*"),
            f["operation"].as_str().unwrap_or("*")
        );
        if let Some(t) = f["target"].as_str() {
            what.push_str(&format!(" on {}", t.rsplit(':').next().unwrap_or(t)));
        }
        if let Some(k) = f["sk"].as_str() {
            what.push_str(&format!(" {k}"));
        }
        let kind = match (f["fault"].as_str(), f["latency_ms"].as_u64()) {
            (Some("latency"), Some(ms)) if ms == hold => "crash".to_string(),
            (Some("latency"), Some(1)) => "counted".to_string(),
            (Some("latency"), _) => "latency".to_string(),
            (Some(k), _) => k.to_string(),
            (None, _) => "?".to_string(),
        };
        *out.entry(format!("{what} {kind}")).or_default() += f["count"].as_u64().unwrap_or(0);
    }
    out
}

/// What was hit between two [`tally`]s: `what → requests`.
pub fn hit(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    before
        .iter()
        .filter_map(|(k, n)| {
            let used = n - after.get(k).copied().unwrap_or(0).min(*n);
            (used > 0).then(|| (k.clone(), used))
        })
        .collect()
}
