#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! Security Hub as the dashboard: identities walk the ladder with `[security_hub]` on, and
//! dormant's findings are read back from the emulator (moto's `GetFindings`) after each step.
//!
//! moto implements `BatchImportFindings` and `GetFindings` but not `BatchUpdateFindings`: the
//! engine suites import through the real adapter into the emulator and record the workflow
//! updates in [`EmulatedHub`]; the adapter's `BatchUpdateFindings` is tested with
//! aws-smithy-mocks at the end of this file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_securityhub::types::{AwsSecurityFinding, WorkflowStatus as SdkWorkflowStatus};
use dormant::adapters::retry::RetryPolicy;
use dormant::adapters::security_hub::{AwsSecurityHub, UPDATED_BY};
use dormant::app::event::handle_event;
use dormant::app::fleet::Fleet;
use dormant::domain::finding::Classification;
use dormant::domain::security_hub::{
    self as hub, AsffFinding, HubFailure, HubFindingRef, HubTarget, WorkflowStatus, WorkflowUpdate,
};
use dormant::domain::time::fmt_time;
use dormant::domain::{Outcome, Policy, Record, Stage, Step, Subject};
use dormant::inbound::eventbridge::classify;
use dormant::ports::{PortResult, SecurityHub, Store};
use serde_json::json;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Fault};
use crate::support::events::{fixture, rules};

const REGION: &str = "us-east-1";

/// The emulator's Security Hub through the real adapter for imports; the workflow updates
/// moto cannot take are recorded instead.
struct EmulatedHub {
    real: AwsSecurityHub,
    updates: Mutex<Vec<WorkflowUpdate>>,
}

impl EmulatedHub {
    async fn new(a: &Account) -> Arc<Self> {
        Arc::new(EmulatedHub {
            real: AwsSecurityHub::new(hub_client(a).await, REGION, RetryPolicy::fast()),
            updates: Mutex::new(Vec::new()),
        })
    }

    /// The updates since the last call, as (finding id, status).
    fn take_updates(&self) -> Vec<(String, WorkflowStatus)> {
        let mut all: Vec<_> = std::mem::take(&mut *self.updates.lock().unwrap())
            .into_iter()
            .map(|u| (u.finding.id, u.status))
            .collect();
        all.sort();
        all
    }
}

#[async_trait]
impl SecurityHub for EmulatedHub {
    fn region(&self) -> &str {
        self.real.region()
    }

    async fn import(&self, findings: &[AsffFinding]) -> PortResult<Vec<HubFailure>> {
        self.real.import(findings).await
    }

    async fn update_workflow(&self, updates: &[WorkflowUpdate]) -> PortResult<Vec<HubFailure>> {
        self.updates.lock().unwrap().extend_from_slice(updates);
        Ok(Vec::new())
    }
}

async fn hub_client(a: &Account) -> aws_sdk_securityhub::Client {
    aws_sdk_securityhub::Client::new(&a.sdk().await)
}

/// Every finding in the account's hub, by id (`GetFindings`, every page).
async fn findings(a: &Account) -> BTreeMap<String, AwsSecurityFinding> {
    let sdk = a.sdk().await;
    // The SDK's deserialiser of an ASFF resource (hundreds of optional details) needs more than
    // a test thread's 2 MiB of stack in a debug build: read on a thread of its own.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(read_findings(aws_sdk_securityhub::Client::new(&sdk)))
        })
        .unwrap()
        .join()
        .unwrap()
}

async fn read_findings(
    client: aws_sdk_securityhub::Client,
) -> BTreeMap<String, AwsSecurityFinding> {
    let mut out = BTreeMap::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let page = client
            .get_findings()
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        for f in page.findings() {
            out.insert(f.id().unwrap().to_string(), f.clone());
        }
        token = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            break;
        }
    }
    out
}

fn id_of(subject: &Subject) -> String {
    hub::finding_id(subject)
}

/// What the dashboard shows for one finding: severity, workflow, record state.
fn shown(f: &AwsSecurityFinding) -> (String, String, String) {
    (
        f.severity()
            .and_then(|s| s.label())
            .map(|l| l.as_str().to_string())
            .unwrap_or_default(),
        f.workflow()
            .and_then(|w| w.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        f.record_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    )
}

fn expect(label: &str, workflow: &str, state: &str) -> (String, String, String) {
    (label.into(), workflow.into(), state.into())
}

/// The ASFF required fields, as Security Hub hands the finding back.
fn assert_required(a: &Account, f: &AwsSecurityFinding) {
    assert_eq!(f.schema_version(), Some("2018-10-08"));
    assert_eq!(
        f.product_arn(),
        Some(format!("arn:aws:securityhub:{REGION}:{0}:product/{0}/default", a.id).as_str())
    );
    assert_eq!(f.aws_account_id(), Some(a.id.as_str()));
    assert!(f.generator_id().is_some_and(|g| g.starts_with("dormant/")));
    assert!(!f.types().is_empty());
    for t in [f.created_at(), f.updated_at()] {
        chrono::DateTime::parse_from_rfc3339(t.unwrap()).unwrap();
    }
    assert!(f.title().is_some_and(|t| !t.is_empty() && t.len() <= 256));
    assert!(f
        .description()
        .is_some_and(|d| !d.is_empty() && d.len() <= 1024));
    assert!(!f.resources().is_empty());
    for r in f.resources() {
        assert!(r.r#type().is_some() && r.id().is_some());
    }
}

fn done(report: &dormant::app::output::RunReport) -> Vec<(String, Step)> {
    let mut v: Vec<_> = report
        .actions
        .iter()
        .filter(|a| a.outcome == Outcome::Done)
        .map(|a| (a.identity.clone(), a.step))
        .collect();
    v.sort();
    v
}

async fn engine_with(a: &Account, policy: Policy, hub: Arc<EmulatedHub>) -> TestEngine {
    a.engine(policy).await.with_security_hub(hub)
}

#[tokio::test]
async fn findings_follow_a_role_and_an_access_key_up_the_ladder_and_a_release() {
    let a = Account::new().await;
    a.role("legacy-etl", 120, &[]).await;
    a.role("comeback", 120, &[]).await;
    a.user("alice", 200).await;
    a.key("alice", 200, 1).await;
    let idle_key = a.key("alice", 100, 60).await;
    let hub = EmulatedHub::new(&a).await;
    let engine = engine_with(&a, Policy::default(), hub.clone()).await;

    let legacy = a.role_subject("legacy-etl");
    let comeback = a.role_subject("comeback");
    let key = Subject::access_key(a.user_principal("alice"), &idle_key);
    let (legacy_id, comeback_id, key_id) = (id_of(&legacy), id_of(&comeback), id_of(&key));

    // Day 0: three notices, three new findings, nothing for the user as a whole.
    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(
        done(&r),
        vec![
            (comeback.id(), Step::Notice),
            (legacy.id(), Step::Notice),
            (key.id(), Step::Notice)
        ]
    );
    let f = findings(&a).await;
    assert_eq!(
        f.keys().cloned().collect::<Vec<_>>(),
        {
            let mut ids = vec![legacy_id.clone(), comeback_id.clone(), key_id.clone()];
            ids.sort();
            ids
        },
        "one finding per noticed subject"
    );
    for finding in f.values() {
        assert_required(&a, finding);
        assert_eq!(shown(finding), expect("LOW", "NEW", "ACTIVE"));
    }
    let role_description = f[&legacy_id].description().unwrap();
    assert!(
        role_description.contains(&format!("Next: quarantine at {}", fmt_time(a.day(7)))),
        "{role_description}"
    );
    assert!(
        role_description.contains("arn:aws:iam::"),
        "{role_description}"
    );
    let key_finding = &f[&key_id];
    assert!(key_finding
        .description()
        .unwrap()
        .contains(&format!("Next: deactivate_keys at {}", fmt_time(a.day(7)))));
    assert_eq!(key_finding.resources()[0].r#type(), Some("AwsIamAccessKey"));
    assert_eq!(
        key_finding.resources()[1].id(),
        Some(a.user_principal("alice").arn().as_str())
    );
    assert_eq!(
        hub.take_updates(),
        vec![],
        "new findings carry their status"
    );

    // Day 3: `comeback` is used again and released: its finding is archived and resolved.
    emulator().backdate_role(&a.id, "comeback", None, Some(a.day(2)));
    let r = engine.sweep(a.day(3)).await.unwrap();
    assert_eq!(done(&r), vec![(comeback.id(), Step::Release)]);
    let f = findings(&a).await;
    assert_eq!(
        shown(&f[&comeback_id]),
        expect("INFORMATIONAL", "RESOLVED", "ARCHIVED")
    );
    assert!(f[&comeback_id]
        .title()
        .unwrap()
        .ends_with("released (in use again, or undone)"));
    assert_eq!(shown(&f[&legacy_id]), expect("LOW", "NEW", "ACTIVE"));
    assert_eq!(
        hub.take_updates(),
        vec![(comeback_id.clone(), WorkflowStatus::Resolved)]
    );

    // Day 7: the role is quarantined and the key deactivated: severity rises, NOTIFIED.
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(
        done(&r),
        vec![
            (legacy.id(), Step::Quarantine),
            (key.id(), Step::DeactivateKeys)
        ]
    );
    let f = findings(&a).await;
    assert_eq!(
        shown(&f[&legacy_id]),
        expect("MEDIUM", "NOTIFIED", "ACTIVE")
    );
    assert_eq!(shown(&f[&key_id]), expect("HIGH", "NOTIFIED", "ACTIVE"));
    assert!(f[&legacy_id]
        .description()
        .unwrap()
        .contains(&format!("Next: delete at {}", fmt_time(a.day(23)))));
    assert_eq!(
        f[&legacy_id].product_fields().unwrap()["dormant/Stage"],
        "quarantined"
    );
    let mut expected = vec![
        (legacy_id.clone(), WorkflowStatus::Notified),
        (key_id.clone(), WorkflowStatus::Notified),
    ];
    expected.sort();
    assert_eq!(hub.take_updates(), expected);

    // Day 23: both deleted: archived, resolved; still three findings, each replaced in place.
    let r = engine.tick(a.day(23)).await.unwrap();
    assert_eq!(
        done(&r),
        vec![(legacy.id(), Step::Delete), (key.id(), Step::Delete)]
    );
    let f = findings(&a).await;
    assert_eq!(f.len(), 3);
    for id in [&legacy_id, &key_id] {
        assert_eq!(
            shown(&f[id]),
            expect("INFORMATIONAL", "RESOLVED", "ARCHIVED")
        );
        assert!(
            f[id].title().unwrap().ends_with("deleted"),
            "{:?}",
            f[id].title()
        );
        assert_eq!(f[id].updated_at(), Some(hub::asff_time(a.day(23)).as_str()));
        assert_eq!(
            f[id].created_at(),
            Some(hub::asff_time(a.day(0)).as_str()),
            "created when first noticed"
        );
        assert_required(&a, &f[id]);
    }
    let mut expected = vec![
        (legacy_id.clone(), WorkflowStatus::Resolved),
        (key_id.clone(), WorkflowStatus::Resolved),
    ];
    expected.sort();
    assert_eq!(hub.take_updates(), expected);
}

#[tokio::test]
async fn a_dry_run_imports_nothing() {
    let a = Account::new().await;
    a.role("legacy-etl", 120, &[]).await;
    let hub = EmulatedHub::new(&a).await;
    let policy = Policy {
        dry_run: true,
        ..Policy::default()
    };
    let engine = engine_with(&a, policy, hub.clone()).await;
    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::DryRun);
    assert_eq!(emulator().count_requests(&a.id, "BatchImportFindings"), 0);
    assert!(findings(&a).await.is_empty());
    assert_eq!(hub.take_updates(), vec![]);
}

#[tokio::test]
async fn a_refused_import_is_audited_and_the_step_stands() {
    let a = Account::new().await;
    a.role("legacy-etl", 120, &[]).await;
    let hub = EmulatedHub::new(&a).await;
    let engine = engine_with(&a, Policy::default(), hub).await;
    let subject = a.role_subject("legacy-etl");
    emulator().inject_fault(
        &a.id,
        "securityhub",
        "BatchImportFindings",
        Fault::AccessDenied,
        1,
    );

    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(done(&r), vec![(subject.id(), Step::Notice)]);
    assert!(a.role_tags("legacy-etl").await["dormant:stage"].starts_with("noticed"));
    assert_eq!(emulator().count_requests(&a.id, "BatchImportFindings"), 1);
    assert!(findings(&a).await.is_empty());
    let history = engine.store.history(&subject).await.unwrap();
    let failed: Vec<_> = history
        .iter()
        .filter(|e| e.step == "security_hub")
        .collect();
    assert_eq!(failed.len(), 1, "{history:?}");
    assert_eq!(failed[0].outcome, Outcome::Failed);
    assert!(
        failed[0].reason.contains("AccessDenied") && failed[0].reason.contains("the step stands"),
        "{}",
        failed[0].reason
    );
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Noticed
    );

    // The next change reports again, with the whole finding.
    engine.tick(a.day(7)).await.unwrap();
    let f = findings(&a).await;
    assert_eq!(
        shown(&f[&id_of(&subject)]),
        expect("MEDIUM", "NOTIFIED", "ACTIVE")
    );
}

#[tokio::test]
async fn the_finding_that_nominated_is_notified_then_resolved() {
    let a = Account::new().await;
    a.user("sharrtest", 200).await;
    let hub = EmulatedHub::new(&a).await;
    let fleet = Fleet {
        engines: vec![Arc::new(
            engine_with(&a, Policy::default(), hub.clone()).await,
        )],
        unreachable: Vec::new(),
        concurrency: 1,
        analyzer: None,
    };
    let engine = &fleet.engines[0];
    let subject = Subject::whole(a.user_principal("sharrtest"));
    // Security Hub's IAM.8 finding about the user, as EventBridge delivers it.
    let text = serde_json::to_string(&fixture("securityhub-iam8-user.json"))
        .unwrap()
        .replace("111122223333", &a.id);
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    let nominating = HubFindingRef {
        id: event["detail"]["findings"][0]["Id"]
            .as_str()
            .unwrap()
            .into(),
        product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
    };

    let r = handle_event(&event, &fleet, &rules(), None, a.day(0))
        .await
        .unwrap();
    assert_eq!(done(&r.run), vec![(subject.id(), Step::Notice)]);
    let updates = hub.updates.lock().unwrap().clone();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].finding, nominating);
    assert_eq!(updates[0].status, WorkflowStatus::Notified);
    assert!(
        updates[0].note.contains("user/sharrtest noticed"),
        "{}",
        updates[0].note
    );
    let record: Record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.hub_findings, vec![nominating.clone()]);
    hub.take_updates();

    // Security Hub sends the finding again on its next check: no pile-up of references.
    let mut again = event.clone();
    again["id"] = json!("redelivered-later");
    handle_event(&again, &fleet, &rules(), None, a.day(1))
        .await
        .unwrap();
    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.hub_findings.len(), 1);

    engine.tick(a.day(7)).await.unwrap();
    assert_eq!(
        hub.take_updates(),
        vec![
            (nominating.id.clone(), WorkflowStatus::Notified),
            (id_of(&subject), WorkflowStatus::Notified)
        ]
    );

    // Undone by an operator: released, and both findings are resolved.
    let arg: dormant::domain::IdentityArg = "user/sharrtest".parse().unwrap();
    engine
        .undo(&arg, "needed after all", a.day(8))
        .await
        .unwrap();
    assert_eq!(
        hub.take_updates(),
        vec![
            (nominating.id.clone(), WorkflowStatus::Resolved),
            (id_of(&subject), WorkflowStatus::Resolved)
        ]
    );
    let f = findings(&a).await;
    assert_eq!(
        shown(&f[&id_of(&subject)]),
        expect("INFORMATIONAL", "RESOLVED", "ARCHIVED")
    );
}

#[tokio::test]
async fn the_adapter_imports_in_batches_of_100_and_reports_each_refused_finding() {
    let a = Account::new().await;
    let real = AwsSecurityHub::new(hub_client(&a).await, REGION, RetryPolicy::fast());
    let target = HubTarget {
        partition: "aws",
        region: REGION,
    };
    let mut batch: Vec<AsffFinding> = (0..150)
        .map(|i| {
            let mut r = Record::new(a.role_subject(&format!("role-{i:03}")));
            r.stage = Stage::Noticed;
            hub::report(
                Stage::Clean,
                &r,
                Some(Step::Notice),
                "idle",
                target,
                a.day(0),
            )
            .finding
        })
        .collect();
    // moto refuses a finding without resources (as Security Hub does): FailedFindings.
    batch[120].resources.clear();
    let failed = real.import(&batch).await.unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|f| f.finding_id.as_str())
            .collect::<Vec<_>>(),
        vec![batch[120].id.as_str()]
    );
    assert!(!failed[0].error.is_empty());
    assert_eq!(emulator().count_requests(&a.id, "BatchImportFindings"), 2);
    assert_eq!(findings(&a).await.len(), 149);
}

#[test]
fn a_security_hub_finding_event_carries_its_id_and_product_for_the_workflow_update() {
    let e = fixture("securityhub-iam8-user.json");
    let c = classify(&e, &rules());
    let finding = c.candidate().expect("IAM.8 FAILED nominates");
    assert_eq!(
        finding.hub_finding,
        Some(HubFindingRef {
            id: e["detail"]["findings"][0]["Id"].as_str().unwrap().into(),
            product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
        })
    );
}

#[test]
fn dormants_own_finding_coming_back_as_an_event_nominates_nothing() {
    let subject = Subject::whole(dormant::domain::Principal::role("111122223333", "/", "r"));
    let mut r = Record::new(subject);
    r.stage = Stage::Quarantined;
    let target = HubTarget {
        partition: "aws",
        region: REGION,
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let own = hub::report(
        Stage::Noticed,
        &r,
        Some(Step::Quarantine),
        "idle",
        target,
        now,
    )
    .finding;
    let event = json!({
        "version": "0", "id": "own-1", "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub", "account": "111122223333", "time": "2026-03-01T00:00:00Z",
        "region": REGION, "resources": [], "detail": {"findings": [own]}
    });
    match classify(&event, &rules()) {
        Classification::Ignored { reason, .. } => {
            assert!(reason.contains("dormant/role"), "{reason}")
        }
        other => panic!("dormant's own finding must not nominate: {other:?}"),
    }
}

// BatchUpdateFindings: moto lacks it, so the adapter meets aws-smithy-mocks.
#[path = "security_hub/batch_update.rs"]
mod batch_update;
