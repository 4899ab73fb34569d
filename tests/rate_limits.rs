#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! IAM's rate limits (issue 18): the emulator throttles IAM per account like AWS, and a first
//! pass paced by dormant's shared limiter finishes with no failed step and few throttles, also
//! when the rate is lowered in the middle of the run.

use std::sync::Arc;
use std::time::Duration;

use dormant::adapters::rate::IamLimits;
use dormant::domain::{Outcome, Policy, Step};
use serde_json::Value;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Rate};

/// `n` roles created 200 days ago and never used: each is due a notice (one `TagRole`).
async fn dormant_roles(a: &Account, n: usize) {
    for i in 0..n {
        a.role(&format!("idle-{i:04}"), 200, &[]).await;
    }
}

async fn limited_engine(a: &Account) -> (TestEngine, Arc<IamLimits>) {
    let limits = Arc::new(IamLimits::default());
    let engine = dormant::app::Engine::new(
        a.adapter().await.with_limits(limits.clone()),
        a.store().await,
        Policy::default(),
        "controller",
    );
    (engine, limits)
}

/// The IAM requests of the run, and how many of them IAM throttled.
fn iam_requests(log: &[Value]) -> (usize, usize) {
    let iam: Vec<_> = log.iter().filter(|r| r["service"] == "iam").collect();
    let throttled = iam.iter().filter(|r| r["rate_limited"] == true).count();
    (iam.len(), throttled)
}

/// Each role's accepted `TagRole` calls: exactly one each.
fn tagged_once(log: &[Value], n: usize) {
    let mut tags = std::collections::BTreeMap::<String, usize>::new();
    for r in log
        .iter()
        .filter(|r| r["operation"] == "TagRole" && r["status"] == 200)
    {
        *tags
            .entry(r["RoleName"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(tags.len(), n, "every role tagged");
    assert!(
        tags.values().all(|c| *c == 1),
        "a role tagged twice: {tags:?}"
    );
}

/// An account with `n` dormant roles under the benchmark's rates, the bursts smaller (~10 s of
/// writes at the floor for 100), its request log cleared.
async fn throttled_account(n: usize) -> Account {
    let a = Account::new().await;
    dormant_roles(&a, n).await;
    emulator().set_iam_rates(
        &a.id,
        Some(Rate::new(20.0, 10.0)),
        Some(Rate::new(10.0, 5.0)),
    );
    a.clear_requests();
    a
}

#[tokio::test]
async fn a_throttled_first_pass_fails_nothing_and_is_rarely_throttled() {
    const N: usize = 100;
    let a = throttled_account(N).await;
    let (engine, limits) = limited_engine(&a).await;

    let report = engine.sweep(a.now).await.unwrap();

    emulator().set_iam_rates(&a.id, None, None);
    let noticed = report
        .actions
        .iter()
        .filter(|x| x.step == Step::Notice && x.outcome == Outcome::Done)
        .count();
    assert_eq!(report.failed(), 0, "{:#?}", report.actions);
    assert_eq!(noticed, N);
    let log = a.requests();
    tagged_once(&log, N);
    let (requests, throttled) = iam_requests(&log);
    assert!(
        throttled > 0,
        "the bucket was reached: the test tests the limiter"
    );
    // Finding the rate costs a few throttles at the start whatever N (the first burst's requests
    // in flight); N is small here, so the bound is loose: bench/ measures the 5 % at N >= 1,000.
    assert!(
        throttled * 5 <= requests,
        "{throttled} of {requests} IAM requests throttled (more than 20 %)"
    );
    let stats = limits.stats();
    assert_eq!(
        stats.throttles as usize, throttled,
        "the limiter saw every throttle"
    );
    let rate = stats.rate.expect("paced after the first throttle");
    assert!(rate < 15.0, "paced near the 10/s bucket, not {rate}/s");
}

/// The same through the binary: the engines it wires pace IAM by the account's shared limiter
/// (a merge once dropped it there while the test above, which wires its own, still passed).
#[tokio::test]
async fn the_cli_sweep_paces_iam_by_the_shared_limiter() {
    const N: usize = 100;
    let a = throttled_account(N).await;

    let (code, report) = a.dormant().json(0, &["sweep"]);

    emulator().set_iam_rates(&a.id, None, None);
    assert_eq!(code, 0, "{report}");
    let log = a.requests();
    tagged_once(&log, N);
    let (requests, throttled) = iam_requests(&log);
    assert!(throttled > 0, "the bucket was reached: {requests} requests");
    // Unpaced, each throttled request retries on its own: about as many throttles as writes.
    assert!(
        throttled * 5 <= requests,
        "{throttled} of {requests} IAM requests throttled (more than 20 %)"
    );
}

#[tokio::test]
async fn a_rate_lowered_mid_run_slows_every_worker_and_fails_nothing() {
    const N: usize = 150;
    let a = Account::new().await;
    dormant_roles(&a, N).await;
    emulator().set_iam_rates(&a.id, None, Some(Rate::new(60.0, 10.0)));
    emulator().set_iam_write_rate_after(&a.id, Rate::new(15.0, 5.0), Duration::from_secs(1));
    a.clear_requests();
    let (engine, limits) = limited_engine(&a).await;

    let report = engine.sweep(a.now).await.unwrap();

    emulator().set_iam_rates(&a.id, None, None);
    assert_eq!(report.failed(), 0, "{:#?}", report.actions);
    let log = a.requests();
    tagged_once(&log, N);
    let (requests, throttled) = iam_requests(&log);
    assert!(
        throttled * 5 <= requests,
        "{throttled} of {requests} IAM requests throttled (more than 20 %)"
    );
    let rate = limits.write.stats().rate.expect("paced");
    assert!(
        rate < 22.0,
        "the limiter followed the lowered rate: {rate}/s"
    );
}

/// The same 1,000 identities in a fresh account: 600 roles and 300 users created now and never
/// used (dormant by day 200, when the runs below take place), 100 roles used on day 198.
async fn thousand(now: chrono::DateTime<chrono::Utc>) -> Account {
    use futures::StreamExt;
    let a = Account::at(now).await;
    // One at a time: moto's CreateRole races with itself within an account (bench/README.md).
    futures::stream::iter(0..1000)
        .for_each_concurrent(1, |i| {
            let a = &a;
            async move {
                match i {
                    0..600 => drop(a.create_role("/", &format!("idle-{i:04}"), &[]).await),
                    600..700 => {
                        let name = format!("busy-{i:04}");
                        a.create_role("/", &name, &[]).await;
                        emulator().backdate_role(&a.id, &name, None, Some(a.day(198)));
                    }
                    _ => drop(a.create_user("/", &format!("gone-{i:04}"), &[]).await),
                }
            }
        })
        .await;
    a
}

/// Accepted tag writes by identity name.
fn tag_writes(log: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut writes = std::collections::BTreeMap::new();
    for r in log.iter().filter(|r| {
        (r["operation"] == "TagRole" || r["operation"] == "TagUser") && r["status"] == 200
    }) {
        let name = r["RoleName"].as_str().or(r["UserName"].as_str()).unwrap();
        *writes.entry(name.to_string()).or_default() += 1;
    }
    writes
}

/// Issue 18: a first pass cut by a 5 s deadline and continued by further runs (sweeps and
/// ticks, alternately) ends in the same state as one unbounded run, and takes no step twice.
#[tokio::test]
async fn a_first_pass_cut_by_deadlines_ends_as_one_unbounded_run() {
    const DAY: i64 = 200;
    let now = chrono::Utc::now();
    let started = std::time::Instant::now();
    let (bounded, whole) = tokio::join!(thousand(now), thousand(now));
    eprintln!("seeded: {:?}", started.elapsed());
    bounded.clear_requests();
    whole.clear_requests();

    let started = std::time::Instant::now();
    let (code, report) = whole.dormant().json(DAY, &["sweep"]);
    eprintln!("unbounded run: {:?}", started.elapsed());
    assert_eq!(code, 0, "{report}");
    assert!(report.get("unfinished").is_none(), "no deadline, no cut");

    let mut runs = Vec::new();
    loop {
        assert!(runs.len() < 40, "not finished after 40 runs: {runs:?}");
        let command = if runs.len() % 2 == 0 { "sweep" } else { "tick" };
        let (code, report) = bounded.dormant().json(DAY, &[command, "--deadline", "5s"]);
        assert_eq!(code, 0, "{command}: {report}");
        let left = report["unfinished"].as_u64().unwrap_or(0);
        runs.push((command, report["evaluated"].as_u64().unwrap(), left));
        if left == 0 {
            break;
        }
    }
    eprintln!("runs: {runs:?}");
    assert!(runs.len() >= 2, "the deadline cut the pass: {runs:?}");
    assert!(
        runs.iter()
            .any(|(c, evaluated, _)| *c == "tick" && *evaluated > 0),
        "a tick continued the pass: {runs:?}"
    );

    // No step twice: one accepted tag write per dormant identity, as in the unbounded run.
    let (cut, one) = (
        tag_writes(&bounded.requests()),
        tag_writes(&whole.requests()),
    );
    assert_eq!(cut.len(), 900, "{runs:?}");
    assert!(
        cut.values().all(|n| *n == 1),
        "an identity tagged twice: {cut:?}"
    );
    assert_eq!(cut, one);
    // The same state: every record, its stage, next step and due date (the reasons name each
    // identity's creation time, which differs by the seconds between the two seedings).
    let state = |a: &Account| -> Vec<String> {
        let (code, list) = a.dormant().json(DAY, &["list"]);
        assert_eq!(code, 0, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let identity = r["identity"].as_str().unwrap().replace(&a.id, "ACCOUNT");
                format!(
                    "{identity} {} {} {} {}",
                    r["stage"], r["next_step"], r["next_due_at"], r["exempt"]
                )
            })
            .collect()
    };
    let (cut, one) = (state(&bounded), state(&whole));
    assert_eq!(cut.len(), 900);
    if let Some((x, y)) = cut.iter().zip(&one).find(|(x, y)| x != y) {
        panic!("the states differ: {x} vs {y}; runs: {runs:?}");
    }
    assert_eq!(cut, one);
}

// ---- the progress bar ----------------------------------------------------------------------

/// Runs `dormant args` on a pseudo-terminal (util-linux `script`): what the terminal showed.
fn on_terminal(d: &crate::support::cli::Dormant, args: &[&str]) -> String {
    let dormant = d.command();
    let mut line = dormant.get_program().to_string_lossy().to_string();
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&d.dir);
    for (k, v) in dormant.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = script
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A sweep on a terminal shows the bar (identities done of the total, steps, throttles); on a
/// pipe, or with `--output json`, nothing of it is printed.
#[tokio::test]
async fn the_progress_bar_is_shown_on_a_terminal_only() {
    let a = Account::new().await;
    let d = a.dormant();
    for i in 0..20 {
        a.create_role("/", &format!("idle-{i:02}"), &[]).await;
    }
    let now = d.at(200);
    let bar = |text: &str| text.contains("identities,") && text.contains("steps taken");

    let json = on_terminal(
        &d,
        &[
            "--now",
            &now,
            "--yes",
            "--dry-run",
            "--output",
            "json",
            "sweep",
        ],
    );
    assert!(!bar(&json), "no bar with --output json: {json}");
    let piped = d.run(&["--now", &now, "--yes", "--dry-run", "sweep"]);
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{stderr}");
    assert!(
        !bar(&stderr) && !stderr.contains('\r'),
        "no bar on a pipe: {stderr:?}"
    );

    let shown = on_terminal(&d, &["--now", &now, "--yes", "sweep"]);
    assert!(bar(&shown), "a bar on a terminal: {shown}");
    assert!(shown.contains("throttled"), "{shown}");
    assert!(
        shown.contains("20 steps taken"),
        "the report follows the bar: {shown}"
    );
}

#[test]
fn a_deadline_must_be_a_positive_duration() {
    let d = crate::support::cli::Dormant::in_new_account();
    for bad in ["0s", "soon", "-5s", "10 parsecs"] {
        let out = d.run(&[&format!("--deadline={bad}"), "sweep"]);
        assert_eq!(out.status.code(), Some(2), "--deadline {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is not a duration"), "{stderr}");
    }
}

// ---- the Lambda's deadline ------------------------------------------------------------------

/// A queued sweep invoked with no time left for its run (the Lambda's deadline less both
/// margins) starts no identity, records where its pass stopped and fails nothing; the next
/// invocation continues the pass and completes it.
#[tokio::test]
async fn a_lambda_out_of_time_leaves_the_pass_to_the_next_invocation() {
    use dormant::adapters::retry::RetryPolicy;
    use dormant::config::Config;
    use dormant::inbound::eventbridge::ClassifyRules;
    use dormant::lambda::{invoke_within, ColdStart, DEADLINE_MARGIN, RUN_MARGIN};
    use dormant::ports::Store;
    use dormant::wiring::{Actor, EngineFactory, LazyFleet, OnDemand};
    use serde_json::json;

    let controller = Account::new().await;
    let member = Account::without_table().await;
    member.role("forgotten", 200, &[]).await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
    member
        .iam
        .create_role()
        .role_name("dormant-member")
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    let m = &member.id;
    let config = Config::from_toml(&format!(
        "[[accounts]]\nid = \"{m}\"\nrole = \"arn:aws:iam::{m}:role/dormant-member\"\n"
    ))
    .unwrap();
    let sdk = controller.sdk().await;
    let factory = EngineFactory::new(&config, &sdk, Actor::Controller, RetryPolicy::fast())
        .await
        .unwrap();
    let (fleet, engines) = (LazyFleet::new(&factory), OnDemand::new(&factory, None));
    let rules = ClassifyRules::from_config(&config);
    let cold = ColdStart {
        function: dormant::lambda::Function::Controller,
        answers: None,
        fleet: &fleet,
        rules: &rules,
        engines: &engines,
        fanout: None,
        concurrency: 1,
    };
    let batch = |id: &str| {
        let body = json!({"dormant": "sweep-account", "account": m, "run": "run-1"}).to_string();
        json!({"Records": [{"messageId": id, "receiptHandle": id, "body": body, "attributes": {},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dormant-sweep",
            "awsRegion": "us-east-1"}]})
    };
    let store = controller.store().await;

    let no_time = DEADLINE_MARGIN + RUN_MARGIN;
    let answer = invoke_within(batch("m-1"), &cold, member.now, no_time)
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert!(
        member.role_tags("forgotten").await.is_empty(),
        "no identity started"
    );
    let cursor = store.sweep_cursor(m).await.unwrap();
    assert_eq!(
        cursor.as_deref(),
        Some(format!("arn:aws:iam::{m}:role/dormant-member").as_str()),
        "the pass stopped at its first identity"
    );

    let plenty = no_time + std::time::Duration::from_secs(600);
    invoke_within(batch("m-2"), &cold, member.now, plenty)
        .await
        .unwrap();
    assert!(
        member
            .role_tags("forgotten")
            .await
            .contains_key("dormant:stage"),
        "{:?}",
        member.role_tags("forgotten").await
    );
    assert_eq!(
        store.sweep_cursor(m).await.unwrap(),
        None,
        "the pass is complete"
    );
}
