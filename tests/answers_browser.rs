//! The answer page in a real browser (issue 19, item 4): the system Chromium, driven by
//! Playwright (`browser-tests/answer-page.mjs`, `npm ci` there), against `serve` on 127.0.0.1
//! and the emulator. Keep, Undo and Approve work end to end, a resubmitted form, a forged and an
//! expired link are refused, and a screenshot of the page is kept in
//! `target/test-artifacts/answer-page.png`. Never skipped under CI: a missing Chromium fails.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use dormant::adapters::clock::Clock;
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::answers::serve;
use dormant::app::answer::{AnswerEngines, AnswerService};
use dormant::app::Engine;
use dormant::domain::answer::{answer_url, AnswerAction, SigningKey, SigningKeys};
use dormant::domain::{Policy, Stage};
use dormant::error::Error;
use dormant::ports::Store;
use tokio::net::TcpListener;

use crate::answers::{keys, Fixture, OWNER};
use crate::support::account::Account;

/// Engines of several emulated accounts, acting as the link's recipient.
struct Accounts<'a>(Vec<(&'a Account, Policy)>);

#[async_trait]
impl AnswerEngines<AwsIam, DynamoStore> for Accounts<'_> {
    async fn engine_as(
        &self,
        account: &str,
        actor: &str,
    ) -> Result<Engine<AwsIam, DynamoStore>, Error> {
        let (a, policy) = self.0.iter().find(|(a, _)| a.id == account).unwrap();
        let mut engine = a.engine(policy.clone()).await;
        engine.actor = actor.to_string();
        Ok(engine)
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser and Playwright are there; under CI their absence is a failure.
fn browser_ready(dir: &Path) -> bool {
    let missing: Vec<&str> = [
        (!Path::new(CHROMIUM).exists()).then_some("/usr/bin/chromium (apt-get install chromium)"),
        (!dir.join("node_modules/playwright-core").exists())
            .then_some("browser-tests/node_modules (npm ci in browser-tests)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "the browser test cannot run under CI: missing {missing:?} (./scripts/test installs both)"
    );
    eprintln!("BROWSER TEST NOT RUN: missing {missing:?}; ./scripts/test installs both");
    false
}

#[tokio::test]
async fn the_answer_page_works_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("browser-tests");
    if !browser_ready(&dir) {
        return;
    }
    let keep = Fixture::role("answer-keep", Policy::default(), &[]).await;
    let undo = Fixture::role("answer-undo", Policy::default(), &[7]).await;
    let mut approval = Policy::default();
    approval.ladder.delete = dormant::domain::DeleteMode::Approval;
    let approve = Fixture::role("answer-approve", approval, &[7, 23, 40, 60]).await;
    assert_eq!(approve.stage().await, Stage::PendingDelete);
    let now = approve.a.day(61);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = |token: &str| answer_url(&base, token);
    let other = SigningKeys {
        current: SigningKey::new(vec![1u8; 32]).unwrap(),
        previous: None,
    };
    let artifacts = root.join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("answer-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let links = serde_json::json!({
        "keep": url(&keep.link(AnswerAction::Keep).await),
        "undo": url(&undo.link(AnswerAction::Undo).await),
        "approve": url(&approve.link(AnswerAction::Approve).await),
        "forged": url(&undo.link_at(AnswerAction::Undo, Stage::Quarantined, undo.a.day(400), &other)),
        "expired": url(&undo.link_at(AnswerAction::Undo, Stage::Quarantined, undo.a.day(10), &keys())),
        "screenshot": screenshot,
    });

    let engines = Accounts(vec![
        (&keep.a, keep.policy.clone()),
        (&undo.a, undo.policy.clone()),
        (&approve.a, approve.policy.clone()),
    ]);
    let keys = keys();
    let svc = AnswerService {
        keys: &keys,
        slack_secret: None,
        engines: &engines,
        ledger: &keep.store,
    };
    let browser = tokio::process::Command::new("node")
        .arg(dir.join("answer-page.mjs"))
        .arg(links.to_string())
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::select! {
        _ = serve(listener, &svc, Clock::fixed(now)) => unreachable!("serve returned"),
        out = tokio::time::timeout(std::time::Duration::from_secs(120), browser) => out,
    }
    .expect("the browser run took over two minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );

    // What the clicks did, read back from the emulator.
    assert!(matches!(
        keep.stage().await,
        Stage::Exempt | Stage::Released
    ));
    assert_eq!(
        keep.a
            .role_tags("answer-keep")
            .await
            .get("dormant:exempt-reason")
            .map(String::as_str),
        Some("needed for the quarterly close")
    );
    assert_eq!(undo.stage().await, Stage::Released);
    let approved = approve.store.load(&approve.subject).await.unwrap().unwrap();
    assert_eq!(approved.approval.map(|a| a.by).as_deref(), Some(OWNER));
    for f in [&keep, &undo] {
        let history = f.store.history(&f.subject).await.unwrap();
        assert!(
            history.iter().any(|e| e.actor == OWNER),
            "{:?}",
            history
                .iter()
                .map(|e| (&e.step, &e.actor))
                .collect::<Vec<_>>()
        );
    }
}
