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

#[tokio::test]
async fn a_throttled_first_pass_fails_nothing_and_is_rarely_throttled() {
    const N: usize = 100;
    let a = Account::new().await;
    dormant_roles(&a, N).await;
    // The benchmark's rates, the bursts smaller: ~10 s of writes at the floor.
    emulator().set_iam_rates(
        &a.id,
        Some(Rate::new(20.0, 10.0)),
        Some(Rate::new(10.0, 5.0)),
    );
    a.clear_requests();
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
    assert!(
        throttled * 10 <= requests,
        "{throttled} of {requests} IAM requests throttled (more than 10 %)"
    );
    let stats = limits.stats();
    assert_eq!(
        stats.throttles as usize, throttled,
        "the limiter saw every throttle"
    );
    let rate = stats.rate.expect("paced after the first throttle");
    assert!(rate < 15.0, "paced near the 10/s bucket, not {rate}/s");
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
        throttled * 10 <= requests,
        "{throttled} of {requests} IAM requests throttled (more than 10 %)"
    );
    let rate = limits.write.stats().rate.expect("paced");
    assert!(
        rate < 22.0,
        "the limiter followed the lowered rate: {rate}/s"
    );
}
