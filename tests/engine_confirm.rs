#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The engine with the two read-only helpers moto lacks, as hand-written fakes of their ports
//! (the adapters themselves are tested with aws-smithy-mocks in adapters_access.rs); IAM and
//! DynamoDB are the emulator's.
//! - Access Advisor confirmation (`inactivity.confirm_with_access_advisor`): later use it reports
//!   stops an access-cutting step; no answer means no step; switched off, it is never asked.
//! - `GetFindingV2` enrichment of Access Analyzer events: the key id narrows a key finding, the
//!   last access goes into the audit trail, and a failed enrichment still nominates.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use dormant::adapters::dynamo::DynamoStore;
use dormant::adapters::iam::AwsIam;
use dormant::app::event::handle_event;
use dormant::app::fleet::Fleet;
use dormant::domain::finding::UnusedAccessDetails;
use dormant::domain::{Outcome, Policy, Principal, Stage, Step, Subject, Timestamp};
use dormant::ports::{AccessAdvisor, ErrorKind, FindingDetails, PortError, PortResult, Store};
use serde_json::Value;

use crate::support::account::Account;
use crate::support::emulator::emulator;
use crate::support::events::{fixture, rules};

/// Answers what the test says and remembers whom it was asked about.
struct FakeAdvisor {
    answer: Mutex<PortResult<Option<Timestamp>>>,
    asked: Mutex<Vec<String>>,
}

impl FakeAdvisor {
    fn answering(answer: PortResult<Option<Timestamp>>) -> Arc<Self> {
        Arc::new(FakeAdvisor {
            answer: Mutex::new(answer),
            asked: Mutex::new(Vec::new()),
        })
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl AccessAdvisor for FakeAdvisor {
    async fn last_authenticated(&self, principal: &Principal) -> PortResult<Option<Timestamp>> {
        self.asked.lock().unwrap().push(principal.arn());
        self.answer.lock().unwrap().clone()
    }
}

/// A role created 200 days ago that IAM last saw used 150 days ago.
async fn idle_role(s: &Account, name: &str) -> Subject {
    s.role_with("/", name, 200, Some(150), &[]).await;
    s.role_subject(name)
}

fn quarantines(s: &Account) -> usize {
    emulator().count_requests(&s.id, "AttachRolePolicy")
}

fn confirming() -> Policy {
    let mut p = Policy::default();
    p.inactivity.confirm_with_access_advisor = true;
    p
}

#[tokio::test]
async fn later_use_in_access_advisor_stops_the_quarantine_and_says_why() {
    let s = Account::new().await;
    let store = s.store().await;
    let subject = idle_role(&s, "quiet").await;
    let used = s.now - Duration::days(3);
    let advisor = FakeAdvisor::answering(Ok(Some(used)));
    let engine = s.engine(confirming()).await.with_advisor(advisor.clone());

    engine.sweep(s.now).await.unwrap();
    assert_eq!(
        store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Noticed
    );
    assert!(
        advisor.asked().is_empty(),
        "a notice cuts nothing: no confirmation"
    );

    let r = engine.sweep(s.now + Duration::days(8)).await.unwrap();
    assert_eq!(advisor.asked(), vec![subject.principal.arn()]);
    assert_eq!(quarantines(&s), 0, "{r:?}");
    let record = store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Released);
    assert_eq!(
        record.last_used_at.map(dormant::domain::time::fmt_time),
        Some(dormant::domain::time::fmt_time(used))
    );
    let release = r
        .actions
        .iter()
        .find(|a| a.step == Step::Release)
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(release.outcome, Outcome::Done);
    let history = store.history(&subject).await.unwrap();
    let entry = history
        .iter()
        .find(|e| e.step == "release")
        .unwrap_or_else(|| panic!("{history:?}"));
    assert!(entry.reason.contains("Access Advisor"), "{}", entry.reason);
    assert!(
        entry
            .reason
            .contains(&dormant::domain::time::fmt_time(used)),
        "{}",
        entry.reason
    );
}

#[tokio::test]
async fn no_confirmation_means_no_step_and_a_recorded_failure() {
    let s = Account::new().await;
    let store = s.store().await;
    let subject = idle_role(&s, "unconfirmed").await;
    let advisor = FakeAdvisor::answering(Err(PortError::new(
        ErrorKind::AccessDenied,
        "GenerateServiceLastAccessedDetails",
        "AccessDenied: not allowed",
    )));
    let engine = s.engine(confirming()).await.with_advisor(advisor.clone());
    engine.sweep(s.now).await.unwrap();

    let later = s.now + Duration::days(8);
    let r = engine.sweep(later).await.unwrap();
    assert_eq!(quarantines(&s), 0);
    assert_eq!(advisor.asked().len(), 1);
    let failed = r
        .actions
        .iter()
        .find(|a| a.outcome == Outcome::Failed)
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(failed.step, Step::Quarantine);
    assert!(
        failed.reason.contains("Access Advisor"),
        "{}",
        failed.reason
    );
    let record = store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Noticed);
    assert!(record.pending.is_none(), "no intent was written");
    let history = store.history(&subject).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.step == "quarantine" && e.outcome == Outcome::Failed),
        "{history:?}"
    );

    // Once Access Advisor answers (and shows no use), the step goes ahead, saying what it saw.
    *advisor.answer.lock().unwrap() = Ok(None);
    let r = engine.tick(later + Duration::hours(1)).await.unwrap();
    assert_eq!(quarantines(&s), 1, "{r:?}");
    let history = store.history(&subject).await.unwrap();
    let done = history
        .iter()
        .find(|e| e.step == "quarantine" && e.outcome == Outcome::Done)
        .unwrap_or_else(|| panic!("{history:?}"));
    assert!(
        done.reason
            .contains("Access Advisor: no service authenticated"),
        "{}",
        done.reason
    );
}

#[tokio::test]
async fn switched_off_access_advisor_is_never_asked() {
    let s = Account::new().await;
    let store = s.store().await;
    let subject = idle_role(&s, "unasked").await;
    // It would say "used yesterday"; nobody asks.
    let advisor = FakeAdvisor::answering(Ok(Some(s.now - Duration::days(1))));
    let engine = s
        .engine(Policy::default())
        .await
        .with_advisor(advisor.clone());
    engine.sweep(s.now).await.unwrap();
    engine.sweep(s.now + Duration::days(8)).await.unwrap();
    assert!(advisor.asked().is_empty());
    assert_eq!(quarantines(&s), 1);
    assert_eq!(
        store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Quarantined
    );
}

// ---- GetFindingV2 enrichment ---------------------------------------------------------------------

struct FakeAnalyzer {
    answer: PortResult<UnusedAccessDetails>,
    asked: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl FindingDetails for FakeAnalyzer {
    async fn unused_access(
        &self,
        analyzer_arn: &str,
        finding_id: &str,
    ) -> PortResult<UnusedAccessDetails> {
        self.asked
            .lock()
            .unwrap()
            .push((analyzer_arn.to_string(), finding_id.to_string()));
        self.answer.clone()
    }
}

/// A user whose console password was used yesterday (so the user as a whole is active) and two
/// access keys last used 100 days ago (each dormant on its own).
async fn user_with_two_idle_keys(s: &Account, name: &str) -> (Principal, String, String) {
    s.user_with("/", name, 200, Some(1), true).await;
    let a = s.key(name, 200, 100).await;
    let b = s.key(name, 200, 100).await;
    (s.user_principal(name), a, b)
}

/// The Access Analyzer key fixture, pointed at `user` in this account.
fn key_event(s: &Account, user: &str, id: &str) -> Value {
    let mut e = fixture("access-analyzer-unused-access-key.json");
    e["id"] = Value::from(id);
    e["detail"]["resource"] = Value::from(format!("arn:aws:iam::{}:user/{user}", s.id));
    e["detail"]["accountId"] = Value::from(s.id.clone());
    e
}

async fn fleet(s: &Account, analyzer: Arc<FakeAnalyzer>) -> Fleet<AwsIam, DynamoStore> {
    Fleet {
        engines: vec![Arc::new(s.engine(Policy::default()).await)],
        unreachable: Vec::new(),
        concurrency: 1,
        analyzer: Some(analyzer),
    }
}

#[tokio::test]
async fn the_key_id_from_get_finding_v2_narrows_a_key_finding_to_that_key() {
    let s = Account::new().await;
    let store = s.store().await;
    let (user, a, b) = user_with_two_idle_keys(&s, "ci-deployer").await;
    let last = s.now - Duration::days(100);
    let analyzer = Arc::new(FakeAnalyzer {
        answer: Ok(UnusedAccessDetails {
            resource: Some(user.arn()),
            access_key_id: Some(a.clone()),
            last_accessed: Some(last),
        }),
        asked: Mutex::new(Vec::new()),
    });
    let fleet = fleet(&s, analyzer.clone()).await;

    let r = handle_event(
        &key_event(&s, "ci-deployer", "ev-key-1"),
        &fleet,
        &rules(),
        None,
        s.now,
    )
    .await
    .unwrap();
    assert_eq!(r.run.failed(), 0, "{r:?}");
    assert_eq!(
        analyzer.asked.lock().unwrap().clone(),
        vec![(
            "arn:aws:access-analyzer:us-west-2:123456789012:analyzer/UnusedAccess-org".to_string(),
            "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".to_string()
        )]
    );
    let key_a = Subject::access_key(user.clone(), &a);
    let key_b = Subject::access_key(user.clone(), &b);
    assert_eq!(
        store.load(&key_a).await.unwrap().map(|r| r.stage),
        Some(Stage::Noticed),
        "{r:?}"
    );
    assert_eq!(
        store.load(&key_b).await.unwrap().map(|r| r.stage),
        None,
        "the other idle key was not nominated: {r:?}"
    );
    let history = store.history(&key_a).await.unwrap();
    let notice = history
        .iter()
        .find(|e| e.step == "notice" && e.outcome == Outcome::Done)
        .unwrap_or_else(|| panic!("{history:?}"));
    assert!(
        notice.reason.contains(&format!(
            "reports last access {}",
            dormant::domain::time::fmt_time(last)
        )),
        "{}",
        notice.reason
    );
    assert_eq!(notice.event_id.as_deref(), Some("ev-key-1"));
}

#[tokio::test]
async fn a_failed_enrichment_still_nominates() {
    let s = Account::new().await;
    let store = s.store().await;
    let (user, a, b) = user_with_two_idle_keys(&s, "ci-other").await;
    let analyzer = Arc::new(FakeAnalyzer {
        answer: Err(PortError::new(
            ErrorKind::AccessDenied,
            "GetFindingV2",
            "AccessDeniedException: no",
        )),
        asked: Mutex::new(Vec::new()),
    });
    let fleet = fleet(&s, analyzer.clone()).await;

    let r = handle_event(
        &key_event(&s, "ci-other", "ev-key-2"),
        &fleet,
        &rules(),
        None,
        s.now,
    )
    .await
    .unwrap();
    assert_eq!(r.run.failed(), 0, "{r:?}");
    assert_eq!(analyzer.asked.lock().unwrap().len(), 1);
    // Without the key id every credential of the user is judged: both idle keys are noticed.
    for key in [&a, &b] {
        assert_eq!(
            store
                .load(&Subject::access_key(user.clone(), key))
                .await
                .unwrap()
                .map(|r| r.stage),
            Some(Stage::Noticed),
            "{key}: {r:?}"
        );
    }
}

#[tokio::test]
async fn enrichment_never_overrides_iam() {
    // Access Analyzer says the key is idle, but IAM says it was used yesterday: no action, and
    // the audit entry says why.
    let s = Account::new().await;
    let store = s.store().await;
    let (user, a, _) = user_with_two_idle_keys(&s, "ci-busy").await;
    emulator().backdate_access_key(&s.id, "ci-busy", &a, None, Some(s.now - Duration::days(1)));
    let analyzer = Arc::new(FakeAnalyzer {
        answer: Ok(UnusedAccessDetails {
            resource: Some(user.arn()),
            access_key_id: Some(a.clone()),
            last_accessed: Some(s.now - Duration::days(100)),
        }),
        asked: Mutex::new(Vec::new()),
    });
    let fleet = fleet(&s, analyzer).await;
    let r = handle_event(
        &key_event(&s, "ci-busy", "ev-key-3"),
        &fleet,
        &rules(),
        None,
        s.now,
    )
    .await
    .unwrap();
    let key_a = Subject::access_key(user.clone(), &a);
    assert!(
        r.run.actions.iter().all(|x| x.outcome == Outcome::Skipped),
        "{r:?}"
    );
    let history = store.history(&key_a).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(
        history[0].reason.contains("no action") && history[0].reason.contains("used at"),
        "{}",
        history[0].reason
    );
}
