#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! What dormant writes onto an identity, against the emulator (which enforces IAM's 50-tag quota):
//! one stage tag per subject and only where it fits, the old three-tag form cleaned away, and a
//! quarantine policy that never overwrites or deletes an operator's policy of the same name.

use std::collections::BTreeMap;

use dormant::app::output::RunReport;
use dormant::domain::time::fmt_time;
use dormant::domain::{IdentityArg, Outcome, Policy, Principal, Stage, Step, Subject};
use dormant::ports::Store;
use serde_json::{json, Value};

use crate::support::account::{as_refs, Account};
use crate::support::emulator::emulator;

const NO_ROOM: &str = "no room for dormant's tag (50 of 50 used); state kept in DynamoDB only";

/// An operator's own inline policy that happens to be called like dormant's quarantine policy.
const OPERATORS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoBucketDeletes","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#;

fn owner_tags(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("owner-{i:02}"), format!("value {i}")))
        .collect()
}

fn dormant_keys(tags: &BTreeMap<String, String>) -> Vec<&str> {
    tags.keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("dormant:"))
        .collect()
}

fn done(report: &RunReport) -> Vec<Step> {
    assert_eq!(report.failed(), 0, "{:#?}", report.actions);
    report
        .actions
        .iter()
        .filter(|a| a.outcome == Outcome::Done)
        .map(|a| a.step)
        .collect()
}

/// Calls the emulator refused (any status of 400 or more) for this account.
fn refused_calls(a: &Account) -> Vec<String> {
    emulator()
        .requests(&a.id)
        .iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s >= 400))
        .map(|r| r["operation"].as_str().unwrap_or("?").to_string())
        .filter(|op| op != "GetRolePolicy" && op != "GetUserPolicy" && op != "GetLoginProfile")
        .collect()
}

fn arg(s: &str) -> IdentityArg {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_role_with_one_free_tag_slot_walks_the_ladder_with_its_one_stage_tag() {
    let a = Account::new().await;
    a.role("one-slot", 120, &as_refs(&owner_tags(49))).await;
    let engine = a.engine(Policy::default()).await;

    assert_eq!(done(&engine.sweep(a.day(0)).await.unwrap()), [Step::Notice]);
    let tags = a.role_tags("one-slot").await;
    assert_eq!(tags.len(), 50);
    assert_eq!(dormant_keys(&tags), ["dormant:stage"]);
    assert_eq!(
        tags["dormant:stage"],
        format!("noticed next quarantine at {}", fmt_time(a.day(7)))
    );

    assert_eq!(
        done(&engine.tick(a.day(7)).await.unwrap()),
        [Step::Quarantine]
    );
    let tags = a.role_tags("one-slot").await;
    assert_eq!(tags.len(), 50);
    assert_eq!(
        tags["dormant:stage"],
        format!("quarantined next delete at {}", fmt_time(a.day(23)))
    );

    assert_eq!(done(&engine.tick(a.day(23)).await.unwrap()), [Step::Delete]);
    assert_eq!(refused_calls(&a), Vec::<String>::new());
}

#[tokio::test]
async fn a_role_with_fifty_tags_walks_the_ladder_without_a_tag_call_and_the_record_says_so() {
    let a = Account::new().await;
    a.role("full", 120, &as_refs(&owner_tags(50))).await;
    let before = a.role_tags("full").await;
    let engine = a.engine(Policy::default()).await;
    let subject = Subject::whole(Principal::role(&a.id, "/", "full"));

    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(done(&r), [Step::Notice]);
    assert!(r.actions[0].reason.ends_with(NO_ROOM), "{:?}", r.actions);
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(done(&r), [Step::Quarantine]);
    assert!(r.actions[0].reason.ends_with(NO_ROOM), "{:?}", r.actions);

    assert!(a.role_quarantined("full").await, "the step itself happened");
    assert_eq!(a.role_tags("full").await, before);
    assert_eq!(emulator().count_requests(&a.id, "TagRole"), 0);
    assert_eq!(refused_calls(&a), Vec::<String>::new());

    let record = engine.store.load(&subject).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Quarantined);
    assert_eq!(record.next_step, Some(Step::Delete));
    assert!(record.reason.ends_with(NO_ROOM), "{}", record.reason);
    let history = engine.store.history(&subject).await.unwrap();
    let noted: Vec<&str> = history
        .iter()
        .filter(|h| h.outcome == Outcome::Done && h.reason.ends_with(NO_ROOM))
        .map(|h| h.step.as_str())
        .collect();
    assert_eq!(noted, ["notice", "quarantine"]);

    let undone = engine
        .undo(&arg("role/full"), "false alarm", a.day(8))
        .await
        .unwrap();
    assert_eq!(undone.outcome, Outcome::Done);
    assert!(!a.role_quarantined("full").await);
    assert_eq!(a.role_tags("full").await, before);
}

#[tokio::test]
async fn two_dormant_keys_of_a_user_with_one_free_slot_share_it_for_the_marker_and_fail_nothing() {
    let a = Account::new().await;
    // Signed in yesterday, so only the keys are dormant, each on its own.
    a.tagged_user(
        "/",
        "crowded",
        400,
        Some(1),
        true,
        &as_refs(&owner_tags(49)),
    )
    .await;
    a.key("crowded", 300, 100).await;
    a.key("crowded", 300, 100).await;
    let engine = a.engine(Policy::default()).await;

    let r = engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(done(&r), [Step::Notice, Step::Notice]);
    for action in r.actions.iter().filter(|a| a.outcome == Outcome::Done) {
        // Both are decided on the same read: the one free slot is not promised to either
        // key's stage tag, but both need the user's credentials marker, which takes it.
        assert!(
            action.reason.ends_with(
                "no room for dormant's tag (49 of 50 used, 1 kept for other credentials of this user); state kept in DynamoDB only (only the user's dormant:credentials marker written)"
            ),
            "{}",
            action.reason
        );
    }
    assert_eq!(
        emulator().count_requests(&a.id, "TagUser"),
        2,
        "the same marker"
    );
    let tags = a.user_tags("crowded").await;
    assert_eq!(tags.len(), 50);
    assert!(tags.contains_key(dormant::domain::tag::CREDENTIALS_TAG));

    // So the keys can be turned off under dormant's roles, and are.
    let r = engine.tick(a.day(7)).await.unwrap();
    assert_eq!(done(&r), [Step::DeactivateKeys, Step::DeactivateKeys]);
    assert_eq!(refused_calls(&a), Vec::<String>::new());
}

#[tokio::test]
async fn the_old_three_tag_form_goes_at_the_next_step_and_on_release() {
    let a = Account::new().await;
    a.role("upgraded", 120, &[("team", "data")]).await;
    a.role("upgraded-released", 120, &[("team", "data")]).await;
    let engine = a.engine(Policy::default()).await;
    assert_eq!(
        done(&engine.sweep(a.day(0)).await.unwrap()),
        [Step::Notice, Step::Notice]
    );
    // What versions before the single stage tag wrote at notice.
    let next_at = fmt_time(a.day(7));
    let old_form = [
        ("dormant:stage", "noticed"),
        ("dormant:next-step", "quarantine"),
        ("dormant:next-step-at", next_at.as_str()),
    ];
    for role in ["upgraded", "upgraded-released"] {
        a.tag_role(role, &old_form).await;
    }

    assert_eq!(
        done(&engine.tick(a.day(7)).await.unwrap()),
        [Step::Quarantine, Step::Quarantine]
    );
    let tags = a.role_tags("upgraded").await;
    assert_eq!(dormant_keys(&tags), ["dormant:stage"]);
    assert!(tags["dormant:stage"].starts_with("quarantined next delete at "));

    // Tagged again the old way, as an earlier version's quarantine would have left it.
    a.tag_role(
        "upgraded-released",
        &[
            ("dormant:stage", "quarantined"),
            ("dormant:next-step", "delete"),
            ("dormant:next-step-at", "2030-01-01T00:00:00Z"),
        ],
    )
    .await;
    for role in ["upgraded", "upgraded-released"] {
        let r = engine
            .undo(&arg(&format!("role/{role}")), "false alarm", a.day(8))
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Done);
        assert_eq!(
            a.role_tags(role).await,
            BTreeMap::from([("team".to_string(), "data".to_string())]),
            "{role}: every tag of dormant's is gone, in either form"
        );
        assert!(a.role_policy_documents(role).await.is_empty(), "{role}");
    }
}

#[tokio::test]
async fn an_operators_policy_named_like_the_quarantine_survives_quarantine_and_undo() {
    let a = Account::new().await;
    a.role("guarded", 120, &[]).await;
    a.put_role_policy("guarded", "DormantQuarantineDenyAll", OPERATORS_POLICY)
        .await;
    let operators: Value = serde_json::from_str(OPERATORS_POLICY).unwrap();
    let engine = a.engine(Policy::default()).await;

    engine.sweep(a.day(0)).await.unwrap();
    assert_eq!(
        done(&engine.tick(a.day(7)).await.unwrap()),
        [Step::Quarantine]
    );
    let inline = a.role_policy_documents("guarded").await;
    assert_eq!(
        inline,
        BTreeMap::from([("DormantQuarantineDenyAll".to_string(), operators.clone())]),
        "not overwritten, and no policy document written"
    );
    assert!(a.role_quarantined("guarded").await);

    // A second quarantine attempt (a resumed intent) finds dormant's policy and writes nothing.
    let fresh = a.adapter().await;
    let principal = Principal::role(&a.id, "/", "guarded");
    emulator().clear_requests(&a.id);
    dormant::ports::Iam::apply(
        &fresh,
        &principal,
        &dormant::domain::Effect::PutQuarantinePolicy,
    )
    .await
    .unwrap();
    assert_eq!(emulator().count_requests(&a.id, "AttachRolePolicy"), 0);
    let facts =
        dormant::ports::Iam::fresh_facts(&fresh, dormant::domain::PrincipalKind::Role, "guarded")
            .await
            .unwrap()
            .unwrap();
    assert!(facts.has_quarantine_policy);

    let r = engine
        .undo(&arg("role/guarded"), "false alarm", a.day(8))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(
        a.role_policy_documents("guarded").await,
        BTreeMap::from([("DormantQuarantineDenyAll".to_string(), operators)]),
        "the operator's policy is still there, unchanged"
    );
    assert!(!a.role_quarantined("guarded").await, "dormant's is gone");
}

#[tokio::test]
async fn releasing_a_noticed_role_leaves_an_operators_policy_of_that_name_alone() {
    let a = Account::new().await;
    a.role("noticed-guarded", 120, &[]).await;
    a.put_role_policy(
        "noticed-guarded",
        "DormantQuarantineDenyAll",
        OPERATORS_POLICY,
    )
    .await;
    let engine = a.engine(Policy::default()).await;
    assert_eq!(done(&engine.sweep(a.day(0)).await.unwrap()), [Step::Notice]);

    let r = engine
        .undo(&arg("role/noticed-guarded"), "false alarm", a.day(1))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Done);
    assert_eq!(
        a.role_policy_documents("noticed-guarded").await,
        BTreeMap::from([(
            "DormantQuarantineDenyAll".to_string(),
            serde_json::from_str::<Value>(OPERATORS_POLICY).unwrap()
        )])
    );
    assert_eq!(emulator().count_requests(&a.id, "DeleteRolePolicy"), 0);
    assert_eq!(
        json!(dormant_keys(&a.role_tags("noticed-guarded").await)),
        json!([])
    );
}

const MARKER: &str = dormant::domain::tag::CREDENTIALS_TAG;

/// A user who signed in yesterday with `keys` access keys, each last used `used` days ago.
async fn user_with_keys(a: &Account, name: &str, used: &[i64]) -> Vec<String> {
    a.tagged_user("/", name, 400, Some(1), true, &[]).await;
    let mut ids = Vec::new();
    for days in used {
        ids.push(a.key(name, 300, *days).await);
    }
    ids
}

/// Review C: two credential ladders of one user that end in the same tick each see the other's
/// tag on their one read of the user; the marker is decided again once both are done, and goes.
/// Another user's second key, whose ladder is still running, keeps it until that one ends too.
#[tokio::test]
async fn two_key_ladders_ending_in_one_tick_take_the_marker_off_and_a_running_one_keeps_it() {
    let a = Account::new().await;
    user_with_keys(&a, "pair", &[100, 100]).await;
    user_with_keys(&a, "trio", &[100, 40]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    engine.sweep(a.day(5)).await.unwrap(); // trio's second key is noticed now
    assert!(a.user_tags("pair").await.contains_key(MARKER));
    engine.tick(a.day(7)).await.unwrap();
    engine.tick(a.day(12)).await.unwrap();

    let r = engine.tick(a.day(23)).await.unwrap();
    assert_eq!(done(&r), [Step::Delete, Step::Delete, Step::Delete]);
    let pair = a.user_tags("pair").await;
    assert_eq!(dormant_keys(&pair), Vec::<&str>::new(), "{pair:?}");
    let history = engine
        .store
        .history(&Subject::whole(a.user_principal("pair")))
        .await
        .unwrap();
    assert!(
        history.iter().any(|e| e
            .reason
            .contains("removed the user's dormant:credentials marker")),
        "{history:?}"
    );
    let trio = a.user_tags("trio").await;
    assert!(
        trio.contains_key(MARKER),
        "the third key's ladder: {trio:?}"
    );

    engine.tick(a.day(28)).await.unwrap();
    let trio = a.user_tags("trio").await;
    assert_eq!(dormant_keys(&trio), Vec::<&str>::new(), "{trio:?}");
    assert_eq!(refused_calls(&a), Vec::<String>::new());
}

/// Review C in a sweep: both keys of a user used again are released in the same sweep; the
/// marker goes with them.
#[tokio::test]
async fn two_keys_released_in_one_sweep_take_the_marker_off() {
    let a = Account::new().await;
    let ids = user_with_keys(&a, "back", &[100, 100]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    assert!(a.user_tags("back").await.contains_key(MARKER));
    for id in &ids {
        emulator().backdate_access_key(&a.id, "back", id, None, Some(a.day(1)));
    }
    engine.sweep(a.day(2)).await.unwrap();
    for id in &ids {
        let key = Subject::access_key(a.user_principal("back"), id);
        let record = engine.store.load(&key).await.unwrap().unwrap();
        assert_eq!(record.stage, Stage::Released, "{}", record.reason);
    }
    let tags = a.user_tags("back").await;
    assert_eq!(dormant_keys(&tags), Vec::<&str>::new(), "{tags:?}");
}

/// Review D: the owner deletes a key dormant noticed. Its record goes to `deleted`, its tag on
/// the user goes too (an orphan would keep the marker for ever), and the marker stays only for
/// the user's other key on the ladder, then goes with that ladder's end.
#[tokio::test]
async fn a_key_deleted_outside_dormant_takes_its_tag_off_and_no_longer_keeps_the_marker() {
    let a = Account::new().await;
    let ids = user_with_keys(&a, "owner", &[100, 100]).await;
    let engine = a.engine(Policy::default()).await;
    engine.sweep(a.day(0)).await.unwrap();
    let gone_tag = format!("dormant:key:{}:stage", ids[0]);
    assert!(a.user_tags("owner").await.contains_key(&gone_tag));
    a.iam
        .delete_access_key()
        .user_name("owner")
        .access_key_id(&ids[0])
        .send()
        .await
        .unwrap();

    engine.sweep(a.day(1)).await.unwrap();
    let key = Subject::access_key(a.user_principal("owner"), &ids[0]);
    let record = engine.store.load(&key).await.unwrap().unwrap();
    assert_eq!(record.stage, Stage::Deleted, "{}", record.reason);
    let tags = a.user_tags("owner").await;
    assert!(!tags.contains_key(&gone_tag), "{tags:?}");
    assert!(tags.contains_key(MARKER), "the other key is on the ladder");

    // The other key used again: its release ends the last ladder, and the marker goes.
    emulator().backdate_access_key(&a.id, "owner", &ids[1], None, Some(a.day(2)));
    engine.sweep(a.day(3)).await.unwrap();
    let tags = a.user_tags("owner").await;
    assert_eq!(dormant_keys(&tags), Vec::<&str>::new(), "{tags:?}");
}
