#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The SSM Automation fallback in the engine: IAM (the emulator) refuses a step, the engine starts
//! the matching `remediation-docs/` document, and later ticks commit or record the failure.
//! moto has no Automation executions, so the SSM side here is a hand-written fake port that
//! records requests and reports what the test tells it (the SSM adapter itself is tested with
//! aws-smithy-mocks in adapters_ssm.rs).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dormant::adapters::retry::RetryPolicy;
use dormant::app::engine::FallbackSetup;
use dormant::domain::{AutomationStatus, Outcome, Policy, Stage, Step, Subject};
use dormant::ports::Store;

use crate::support::account::{Account, TestEngine};
use crate::support::emulator::{emulator, Fault};
use crate::support::fakes::{FakeSsm, Published};

const AUTOMATION_ROLE: &str = "arn:aws:iam::111122223333:role/dormant-automation";

struct Setup {
    account: Account,
    now: DateTime<Utc>,
    ssm: Arc<FakeSsm>,
    events: Arc<Published>,
    engine: TestEngine,
}

/// An account with the role "locked", created 200 days ago and never used, and an engine whose
/// fallback for `always` (and for whatever IAM refuses) is the fake SSM.
async fn setup(always: Vec<Step>) -> Setup {
    let account = Account::new().await;
    account.role("locked", 200, &[]).await;
    let ssm = Arc::new(FakeSsm::default());
    let events = Arc::new(Published::default());
    let engine = account
        .engine(Policy::default())
        .await
        .with_publisher(events.clone())
        .with_fallback(FallbackSetup {
            runner: ssm.clone(),
            automation_role: AUTOMATION_ROLE.into(),
            always,
            starts: true,
        });
    Setup {
        now: account.now,
        account,
        ssm,
        events,
        engine,
    }
}

fn subject(s: &Setup) -> Subject {
    s.account.role_subject("locked")
}

/// What `Dormant-QuarantineIdentity` changes in IAM: dormant's managed quarantine policy of the
/// role's account attached to it (no inline policy written).
async fn land_quarantine(account: &str, role: &str) {
    let sdk = emulator().sdk_config_for(account).await;
    aws_sdk_iam::Client::new(&sdk)
        .attach_role_policy()
        .role_name(role)
        .policy_arn(dormant::domain::quarantine::policy_arn("aws", account))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn access_denied_starts_the_document_and_a_later_tick_commits_on_success() {
    let s = setup(vec![]).await;
    s.engine.sweep(s.now).await.unwrap();
    emulator().inject_fault(
        &s.account.id,
        "iam",
        "AttachRolePolicy",
        Fault::AccessDenied,
        1,
    );
    let r = s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    assert_eq!(r.actions.len(), 1);
    assert_eq!(
        r.actions[0].outcome,
        Outcome::FallbackStarted,
        "{:?}",
        r.actions
    );
    let started = s.ssm.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].document, "Dormant-QuarantineIdentity");
    assert_eq!(started[0].parameters["PrincipalKind"], vec!["role"]);
    assert_eq!(started[0].parameters["PrincipalName"], vec!["locked"]);
    assert_eq!(
        started[0].parameters["AutomationAssumeRole"],
        vec![AUTOMATION_ROLE]
    );
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert_eq!(
        record.stage,
        Stage::Noticed,
        "not quarantined until SSM says so"
    );
    assert_eq!(
        record.pending.as_ref().unwrap().fallback,
        vec!["exec-1".to_string()]
    );

    // Still running: nothing changes.
    let r = s
        .engine
        .tick(s.now + Duration::days(7) + Duration::minutes(15))
        .await
        .unwrap();
    assert!(r.actions.is_empty(), "{r:?}");
    // The document attaches dormant's deny policy; SSM then reports success.
    land_quarantine(&s.account.id, "locked").await;
    assert!(s.account.role_quarantined("locked").await);
    *s.ssm.status.lock().unwrap() = Some(AutomationStatus::Succeeded);
    let r = s
        .engine
        .tick(s.now + Duration::days(7) + Duration::minutes(30))
        .await
        .unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::Done);
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert!(record.pending.is_none());
    assert_eq!(record.next_step, Some(Step::Delete));
    let history = s.engine.store.history(&subject(&s)).await.unwrap();
    let outcomes: Vec<(&str, Outcome)> = history
        .iter()
        .map(|h| (h.step.as_str(), h.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("notice", Outcome::Done),
            ("quarantine", Outcome::FallbackStarted),
            ("quarantine", Outcome::Done)
        ]
    );
    assert!(s
        .events
        .events()
        .iter()
        .any(|e| e.detail_type == "Identity Quarantined"));
}

#[tokio::test]
async fn a_failed_execution_is_recorded_and_emits_remediation_failed() {
    let s = setup(vec![]).await;
    s.engine.sweep(s.now).await.unwrap();
    emulator().inject_fault(
        &s.account.id,
        "iam",
        "AttachRolePolicy",
        Fault::AccessDenied,
        1,
    );
    s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    *s.ssm.status.lock().unwrap() = Some(AutomationStatus::Failed(
        "Step QuarantineIdentity failed: AccessDenied".into(),
    ));
    let r = s
        .engine
        .tick(s.now + Duration::days(7) + Duration::minutes(15))
        .await
        .unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::Failed);
    assert!(
        r.actions[0]
            .reason
            .contains("Step QuarantineIdentity failed"),
        "{}",
        r.actions[0].reason
    );
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Noticed);
    let intent = record
        .pending
        .as_ref()
        .expect("the intent stays for the next attempt");
    assert!(
        intent.fallback.is_empty(),
        "the failed execution is not polled again"
    );
    assert!(
        !intent.handed_to_ssm(),
        "it ended failed, so nothing of it can land: a release claims nothing for it"
    );
    assert_eq!(intent.attempts, 1);
    let retry_at = s.now + Duration::days(7) + Duration::minutes(30);
    assert_eq!(
        record.next_due_at,
        Some(retry_at),
        "the next attempt backs off (15 minutes after the first failure), not every tick"
    );
    let quiet = s
        .engine
        .tick(s.now + Duration::days(7) + Duration::minutes(20))
        .await
        .unwrap();
    assert!(quiet.actions.is_empty(), "{quiet:?}");
    let events = s.events.events();
    assert!(events.iter().any(|e| e.detail_type == "Remediation Failed"
        && e.detail.reason.contains("Step QuarantineIdentity failed")));
}

#[tokio::test]
async fn steps_configured_for_ssm_never_call_iam_directly() {
    let s = setup(vec![Step::Quarantine]).await;
    s.engine.sweep(s.now).await.unwrap();
    emulator().clear_requests(&s.account.id);
    let r = s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted);
    assert_eq!(
        emulator().count_requests(&s.account.id, "AttachRolePolicy"),
        0
    );
    assert_eq!(s.ssm.started.lock().unwrap().len(), 1);
}

/// The same path through the real SSM adapter, its answers mocked with aws-smithy-mocks (moto has
/// no Automation executions): the start carries the document and parameters, a poll that says
/// InProgress waits, and Success commits the quarantine.
#[tokio::test]
async fn the_real_ssm_adapter_drives_the_fallback_to_completion() {
    use aws_sdk_ssm::operation::get_automation_execution::GetAutomationExecutionOutput;
    use aws_sdk_ssm::operation::start_automation_execution::StartAutomationExecutionOutput;
    use aws_sdk_ssm::types::{AutomationExecution, AutomationExecutionStatus};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use dormant::adapters::ssm::SsmFallback;

    let start = mock!(aws_sdk_ssm::Client::start_automation_execution)
        .match_requests(|r| {
            let p = r.parameters().cloned().unwrap_or_default();
            r.document_name() == Some("Dormant-QuarantineIdentity")
                && p.get("PrincipalName") == Some(&vec!["locked".to_string()])
                && p.get("PrincipalKind") == Some(&vec!["role".to_string()])
                && p.get("AutomationAssumeRole") == Some(&vec![AUTOMATION_ROLE.to_string()])
        })
        .then_output(|| {
            StartAutomationExecutionOutput::builder()
                .automation_execution_id("exec-42")
                .build()
        });
    let status = |s: AutomationExecutionStatus| {
        GetAutomationExecutionOutput::builder()
            .automation_execution(
                AutomationExecution::builder()
                    .automation_execution_id("exec-42")
                    .automation_execution_status(s)
                    .build(),
            )
            .build()
    };
    let poll = mock!(aws_sdk_ssm::Client::get_automation_execution)
        .match_requests(|r| r.automation_execution_id() == Some("exec-42"))
        .sequence()
        .output(move || status(AutomationExecutionStatus::Inprogress))
        .output(move || status(AutomationExecutionStatus::Success))
        .build();
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&start, &poll], |c| c
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled()));

    let a = Account::new().await;
    a.role("locked", 200, &[]).await;
    let now = a.now;
    let engine = a
        .engine(Policy::default())
        .await
        .with_fallback(FallbackSetup {
            runner: Arc::new(SsmFallback::new(ssm, RetryPolicy::fast())),
            automation_role: AUTOMATION_ROLE.into(),
            always: vec![],
            starts: true,
        });
    engine.sweep(now).await.unwrap();
    emulator().inject_fault(&a.id, "iam", "AttachRolePolicy", Fault::AccessDenied, 1);
    let r = engine.tick(now + Duration::days(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted, "{r:?}");
    assert!(r.actions[0].reason.contains("exec-42"));
    assert_eq!(start.num_calls(), 1);
    assert!(
        engine
            .tick(now + Duration::days(7) + Duration::minutes(15))
            .await
            .unwrap()
            .actions
            .is_empty(),
        "InProgress: wait"
    );
    land_quarantine(&a.id, "locked").await;
    let r = engine
        .tick(now + Duration::days(7) + Duration::minutes(30))
        .await
        .unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::Done);
    let subject = a.role_subject("locked");
    assert_eq!(
        engine.store.load(&subject).await.unwrap().unwrap().stage,
        Stage::Quarantined
    );
    assert_eq!(poll.num_calls(), 2);
}

#[tokio::test]
async fn no_delete_is_handed_to_ssm_without_a_stored_snapshot() {
    for always in [vec![], vec![Step::Delete]] {
        let s = setup(always.clone()).await;
        s.engine.sweep(s.now).await.unwrap();
        s.engine.tick(s.now + Duration::days(7)).await.unwrap();
        *s.ssm.status.lock().unwrap() = Some(AutomationStatus::Succeeded);
        s.ssm.started.lock().unwrap().clear();
        // The snapshot's read of the tags is denied; so, in the first case, is the delete.
        emulator().inject_fault(&s.account.id, "iam", "ListRoleTags", Fault::AccessDenied, 1);
        emulator().inject_fault(&s.account.id, "iam", "DeleteRole", Fault::AccessDenied, 1);
        let r = s.engine.tick(s.now + Duration::days(23)).await.unwrap();
        assert_eq!(r.actions[0].outcome, Outcome::Failed, "{always:?}: {r:?}");
        assert!(
            r.actions[0].reason.contains("snapshot"),
            "{}",
            r.actions[0].reason
        );
        assert!(
            s.ssm.started.lock().unwrap().is_empty(),
            "{always:?}: no Dormant-DeleteIdentity without a snapshot"
        );
        assert_eq!(emulator().count_requests(&s.account.id, "DeleteRole"), 0);
        assert!(s
            .engine
            .store
            .latest_snapshot(&subject(&s))
            .await
            .unwrap()
            .is_none());
        emulator().clear_faults(&s.account.id);
    }
}

#[tokio::test]
async fn undo_stops_a_running_execution_and_a_late_quarantine_is_repaired() {
    let s = setup(vec![]).await;
    s.engine.sweep(s.now).await.unwrap();
    emulator().inject_fault(
        &s.account.id,
        "iam",
        "AttachRolePolicy",
        Fault::AccessDenied,
        1,
    );
    let r = s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted);

    let undone = s
        .engine
        .undo(
            &"role/locked".parse().unwrap(),
            "owner needs it",
            s.now + Duration::days(7) + Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(undone.stage, Stage::Released);
    assert_eq!(
        *s.ssm.stopped.lock().unwrap(),
        vec!["exec-1".to_string()],
        "the running execution is stopped before the release"
    );
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert!(record.pending.is_none());

    // The execution had attached the deny policy before it stopped: IAM disagrees with the
    // record until the next run puts it right.
    land_quarantine(&s.account.id, "locked").await;
    assert!(s.account.role_quarantined("locked").await);
    s.engine.sweep(s.now + Duration::days(8)).await.unwrap();
    let left = s.account.attached_role_policies("locked").await;
    assert!(left.is_empty(), "repaired: {left:?}");
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Released);
    assert!(record.reason.contains("repaired"), "{}", record.reason);
}

/// Reading dormant's quarantine policy is refused: a recorded failure of the step naming the
/// missing grant, not a hand-over to SSM Automation (whose role has the same grant), and
/// nothing attached.
#[tokio::test]
async fn a_refused_read_of_the_quarantine_policy_fails_the_step_without_starting_ssm() {
    let s = setup(vec![]).await;
    s.engine.sweep(s.now).await.unwrap();
    emulator().inject_fault(&s.account.id, "iam", "GetPolicy", Fault::AccessDenied, 1);
    let r = s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    assert_eq!(r.actions.len(), 1, "{:?}", r.actions);
    assert_eq!(r.actions[0].outcome, Outcome::Failed, "{:?}", r.actions);
    let reason = &r.actions[0].reason;
    assert!(
        reason.contains("may not read its quarantine policy")
            && reason.contains("iam:GetPolicy")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert!(s.ssm.started.lock().unwrap().is_empty(), "no SSM execution");
    assert!(!s.account.role_quarantined("locked").await);
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Noticed);
    let intent = record.pending.expect("the failure is kept on the intent");
    assert!(intent.fallback.is_empty(), "{intent:?}");
    assert!(intent
        .last_error
        .is_some_and(|e| e.contains("may not read its quarantine policy")));
    let history = s.engine.store.history(&subject(&s)).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.outcome == Outcome::Failed && e.reason.contains("iam:GetPolicy")),
        "{history:?}"
    );
}

/// A key step configured to run through SSM, on a user an earlier version tagged (no credentials
/// marker): the controller writes the marker itself, since the document acts under the same
/// guard and writes no tags, then hands the key over.
#[tokio::test]
async fn the_controller_marks_the_user_itself_before_it_hands_a_key_step_to_ssm() {
    use dormant::domain::tag::CREDENTIALS_TAG;
    let s = setup(vec![Step::DeactivateKeys]).await;
    s.account.user("legacy", 400).await;
    s.account.key("legacy", 300, 1).await;
    let idle = s.account.key("legacy", 300, 100).await;
    s.engine.sweep(s.now).await.unwrap();
    assert!(s
        .account
        .user_tags("legacy")
        .await
        .contains_key(CREDENTIALS_TAG));
    // As an earlier version left it.
    s.account
        .iam
        .untag_user()
        .user_name("legacy")
        .tag_keys(CREDENTIALS_TAG)
        .send()
        .await
        .unwrap();

    let r = s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    let keys = r
        .actions
        .iter()
        .find(|a| a.step == Step::DeactivateKeys)
        .unwrap_or_else(|| panic!("{:?}", r.actions));
    assert_eq!(keys.outcome, Outcome::FallbackStarted, "{:?}", r.actions);
    assert!(s
        .account
        .user_tags("legacy")
        .await
        .contains_key(CREDENTIALS_TAG));
    let started = s.ssm.started.lock().unwrap().clone();
    let deactivate: Vec<_> = started
        .iter()
        .filter(|r| r.document == "Dormant-DeactivateAccessKeys")
        .collect();
    assert_eq!(deactivate.len(), 1, "{started:?}");
    assert_eq!(deactivate[0].parameters["AccessKeyIds"], vec![idle]);
    assert_eq!(
        emulator().count_requests(&s.account.id, "UpdateAccessKey"),
        0,
        "the key itself is SSM's"
    );
}

/// A release handed to SSM of a user whose quarantine policy an operator attached before
/// dormant's quarantine step (its key turned off by dormant): `Dormant-ReleaseIdentity` is told
/// not to detach it (`DetachQuarantine=false`), and the release lands with the operator's policy
/// still attached.
#[tokio::test]
async fn an_ssm_release_leaves_an_operators_quarantine_attached() {
    let s = setup(vec![Step::Release]).await;
    s.account.user("held", 400).await;
    let key = s.account.key("held", 300, 200).await;
    let user = Subject::whole(s.account.user_principal("held"));
    s.engine.sweep(s.now).await.unwrap();
    s.account
        .attach_user_policy("held", &s.account.quarantine_arn())
        .await;
    s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    let record = s.engine.store.load(&user).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined, "{}", record.reason);
    assert_eq!(record.quarantine_attached, Some(false));
    s.engine.tick(s.now + Duration::days(14)).await.unwrap();
    let record = s.engine.store.load(&user).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::KeysDeactivated, "{}", record.reason);

    let when = s.now + Duration::days(15);
    let undone = s
        .engine
        .undo(&"user/held".parse().unwrap(), "owner needs it", when)
        .await
        .unwrap();
    assert_eq!(undone.outcome, Outcome::FallbackStarted, "{undone:?}");
    let started = s.ssm.started.lock().unwrap().clone();
    let release: Vec<_> = started
        .iter()
        .filter(|r| r.document == "Dormant-ReleaseIdentity")
        .collect();
    assert_eq!(release.len(), 1, "{started:?}");
    assert_eq!(
        release[0].parameters.get("DetachQuarantine"),
        Some(&vec!["false".to_string()]),
        "{started:?}"
    );

    // The documents turn the key back on and (told to keep it) leave the policy.
    s.account
        .iam
        .update_access_key()
        .user_name("held")
        .access_key_id(&key)
        .status(aws_sdk_iam::types::StatusType::Active)
        .send()
        .await
        .unwrap();
    *s.ssm.status.lock().unwrap() = Some(AutomationStatus::Succeeded);
    let r = s.engine.tick(when + Duration::minutes(30)).await.unwrap();
    let release = r
        .actions
        .iter()
        .find(|a| a.step == Step::Release)
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(release.outcome, Outcome::Done, "{r:?}");
    let record = s.engine.store.load(&user).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Released);
    assert!(record.pending.is_none());
    assert!(s.account.user_quarantined("held").await);
    assert_eq!(
        emulator().count_requests(&s.account.id, "DetachUserPolicy"),
        0
    );
}

/// Review B: a whole user at the tag limit (its state in DynamoDB only, so no `dormant:stage`)
/// and no room for `dormant:credentials`: dormant's roles may not turn its keys off, so the key
/// step is a recorded failure naming the cause, and neither IAM's UpdateAccessKey nor SSM is
/// called (each would only be refused, and retried for ever).
#[tokio::test]
async fn a_key_step_with_no_room_for_the_marker_fails_without_calling_iam_or_ssm() {
    let s = setup(vec![]).await;
    let owner: Vec<(String, String)> = (0..50)
        .map(|i| (format!("owner-{i:02}"), "x".to_string()))
        .collect();
    let owner: Vec<(&str, &str)> = owner
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    s.account
        .tagged_user("/", "crowded", 400, None, false, &owner)
        .await;
    let key = s.account.key("crowded", 300, 200).await;
    let user = Subject::whole(s.account.user_principal("crowded"));
    s.engine.sweep(s.now).await.unwrap();
    s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    let record = s.engine.store.load(&user).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined, "{}", record.reason);
    emulator().clear_requests(&s.account.id);

    let r = s.engine.tick(s.now + Duration::days(14)).await.unwrap();
    let keys = r
        .actions
        .iter()
        .find(|a| a.step == Step::DeactivateKeys)
        .unwrap_or_else(|| panic!("{:?}", r.actions));
    assert_eq!(keys.outcome, Outcome::Failed, "{:?}", r.actions);
    assert!(
        keys.reason
            .contains("neither dormant:stage nor dormant:credentials")
            && keys.reason.contains("remove one tag"),
        "{}",
        keys.reason
    );
    assert_eq!(
        emulator().count_requests(&s.account.id, "UpdateAccessKey"),
        0
    );
    assert!(s.ssm.started.lock().unwrap().is_empty(), "no SSM execution");
    let statuses = s.account.key_statuses("crowded").await;
    assert_eq!(
        statuses[&key],
        aws_sdk_iam::types::StatusType::Active,
        "{statuses:?}"
    );
    let record = s.engine.store.load(&user).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert!(record
        .pending
        .and_then(|i| i.last_error)
        .is_some_and(|e| e.contains("remove one tag")));
}

/// Review E: a key's release handed to SSM (`Dormant-ReactivateAccessKeys` writes no tags): the
/// key's stage tag and the user's marker are the controller's to remove, once SSM reports
/// success, never before (the document needs the marker to turn the key on).
#[tokio::test]
async fn an_ssm_release_of_a_key_removes_its_tag_and_the_marker_after_success() {
    use dormant::domain::tag::CREDENTIALS_TAG;
    let s = setup(vec![Step::Release]).await;
    s.account.user_with("/", "keyed", 400, Some(1), true).await;
    let idle = s.account.key("keyed", 300, 100).await;
    s.engine.sweep(s.now).await.unwrap();
    s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    let key = Subject::access_key(s.account.user_principal("keyed"), &idle);
    let record = s.engine.store.load(&key).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::KeysDeactivated, "{}", record.reason);
    let stage_tag = format!("dormant:key:{idle}:stage");

    let when = s.now + Duration::days(8);
    let undone = s
        .engine
        .undo(&key.id().parse().unwrap(), "needed", when)
        .await
        .unwrap();
    assert_eq!(undone.outcome, Outcome::FallbackStarted, "{undone:?}");
    let tags = s.account.user_tags("keyed").await;
    assert!(
        tags.contains_key(CREDENTIALS_TAG) && tags.contains_key(&stage_tag),
        "kept while the document runs: {tags:?}"
    );

    // The document turns the key back on; SSM reports success.
    s.account
        .iam
        .update_access_key()
        .user_name("keyed")
        .access_key_id(&idle)
        .status(aws_sdk_iam::types::StatusType::Active)
        .send()
        .await
        .unwrap();
    *s.ssm.status.lock().unwrap() = Some(AutomationStatus::Succeeded);
    s.engine.tick(when + Duration::minutes(30)).await.unwrap();
    let record = s.engine.store.load(&key).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Released, "{}", record.reason);
    let tags = s.account.user_tags("keyed").await;
    assert!(tags.keys().all(|k| !k.starts_with("dormant:")), "{tags:?}");
}

/// The role is protected while SSM has its quarantine: the execution is stopped, the controller
/// finishes nothing of the step (no tag written), and the record says the role is protected and
/// that dormant's policy, which the execution attached before it stopped, is still there.
#[tokio::test]
async fn a_step_ssm_has_when_the_identity_becomes_protected_is_stopped_not_finished() {
    let s = setup(vec![Step::Quarantine]).await;
    s.engine.sweep(s.now).await.unwrap();
    let r = s.engine.tick(s.now + Duration::days(7)).await.unwrap();
    assert_eq!(r.actions[0].outcome, Outcome::FallbackStarted);
    land_quarantine(&s.account.id, "locked").await;
    *s.ssm.status.lock().unwrap() = Some(AutomationStatus::Running);

    let mut policy = Policy::default();
    policy
        .exemptions
        .controller
        .push((dormant::domain::PrincipalKind::Role, "locked".into()));
    let protected = s.account.engine(policy).await.with_fallback(FallbackSetup {
        runner: s.ssm.clone(),
        automation_role: AUTOMATION_ROLE.into(),
        always: vec![Step::Quarantine],
        starts: true,
    });
    emulator().clear_requests(&s.account.id);
    protected
        .tick(s.now + Duration::days(7) + Duration::hours(1))
        .await
        .unwrap();

    assert_eq!(*s.ssm.stopped.lock().unwrap(), vec!["exec-1".to_string()]);
    for op in [
        "TagRole",
        "UntagRole",
        "DetachRolePolicy",
        "AttachRolePolicy",
    ] {
        assert_eq!(emulator().count_requests(&s.account.id, op), 0, "{op}");
    }
    let record = s.engine.store.load(&subject(&s)).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Exempt, "{record:?}");
    assert!(record.pending.is_none());
    assert_eq!(record.quarantine_attached, Some(true));
    assert!(
        record.reason.contains("dormant's quarantine policy")
            && record.reason.contains("exec-1 of its quarantine stopped"),
        "{}",
        record.reason
    );
}
