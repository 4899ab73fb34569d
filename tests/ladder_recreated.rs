//! A name deleted and created again is a new identity: the record of the old one is never carried
//! onto it (issue 14, item 4). Stories on the decision core with a fake clock.

use dormant::domain::{Effect, Policy, Stage, Step, Subject};

use crate::support::core_sim::*;

const OLD: &str = "AROAOLDOLDOLDOLDOLD1";
const NEW: &str = "AROANEWNEWNEWNEWNEW2";

#[test]
fn a_role_deleted_by_dormant_and_created_again_is_evaluated_again() {
    let mut w = World::whole(role("etl").unique_id(OLD).created(days(120)).build());
    assert_eq!(w.run(days(0)).step(), Some(Step::Notice));
    assert_eq!(
        w.record.unique_id.as_deref(),
        Some(OLD),
        "kept from the read"
    );
    assert_eq!(w.run(days(7)).step(), Some(Step::Quarantine));
    assert_eq!(w.run(days(23)).step(), Some(Step::Delete));
    assert_eq!(w.record.stage, Stage::Deleted);
    assert_eq!(w.record.unique_id.as_deref(), Some(OLD));

    // Someone creates a role with the same name a day later and never uses it.
    w.facts = Some(role("etl").unique_id(NEW).created(-days(24)).build());
    let d = w.run(days(30));
    assert_eq!(
        (d.step(), d.effects().to_vec()),
        (None, vec![]),
        "nothing in IAM"
    );
    assert!(
        d.reason.starts_with("re-created: unique id AROANEWNEWNEWNEWNEW2 differs from AROAOLDOLDOLDOLDOLD1, which dormant recorded as deleted"),
        "{}",
        d.reason
    );
    assert_eq!(w.record.stage, Stage::Clean);
    assert_eq!(w.record.unique_id.as_deref(), Some(NEW));
    assert_eq!(w.record.reason, d.reason, "the audit trail says why");
    assert_eq!(
        (w.record.noticed_at, w.record.released_at),
        (None, None),
        "nothing of the old identity's history is carried over"
    );

    // Unused past the threshold (and the minimum age): it walks the ladder from the start.
    assert_eq!(w.run(days(113)).step(), None, "89 days old");
    assert_eq!(w.run(days(114)).step(), Some(Step::Notice));
    assert_eq!(w.record.unique_id.as_deref(), Some(NEW));
}

#[test]
fn a_quarantined_role_replaced_outside_dormant_is_never_stepped_on() {
    // Short thresholds, so the replacement looks dormant when the old one's delete falls due.
    let mut policy = Policy::default();
    policy.inactivity.threshold = days(10);
    policy.inactivity.min_age = days(10);
    let mut w = World::whole(role("deploy").unique_id(OLD).created(days(120)).build());
    w.policy = policy;
    assert_eq!(w.run(days(0)).step(), Some(Step::Notice));
    assert_eq!(w.run(days(7)).step(), Some(Step::Quarantine));

    // Deleted and created again outside dormant on day 8; never used.
    w.facts = Some(role("deploy").unique_id(NEW).created(-days(8)).build());
    w.applied.clear();
    let d = w.run(days(23));
    assert_eq!(
        d.step(),
        None,
        "the delete due for the old role is not the new one's"
    );
    assert!(w.applied.is_empty(), "{:?}", w.applied);
    assert!(
        d.reason
            .contains("which dormant tracked as quarantined (removed outside dormant)"),
        "{}",
        d.reason
    );
    assert_eq!(w.record.stage, Stage::Clean);
    assert_eq!(w.record.next_due_at, None, "nothing is due for it any more");

    // The new role starts at the bottom: a notice, never a quarantine or a delete first.
    assert_eq!(w.run(days(24)).step(), Some(Step::Notice));
}

#[test]
fn a_step_left_half_done_is_not_finished_on_a_new_identity() {
    let mut w = World::whole(role("batch").unique_id(OLD).created(days(120)).build());
    w.run(days(0));
    w.run(days(7));
    // A delete started and its run died; then the name was taken by a new role.
    let d = w.decide(days(23));
    assert_eq!(d.step(), Some(Step::Delete));
    let mut pending = w.record.clone();
    pending.pending = Some(dormant::domain::Intent::new(
        Step::Delete,
        t0() + days(23),
        d.effects().to_vec(),
        d.after().unwrap().clone(),
    ));
    w.record = pending;
    w.facts = Some(role("batch").unique_id(NEW).created(-days(23)).build());
    w.applied.clear();

    let d = w.run(days(24));
    assert_eq!(d.step(), None, "the intent is not resumed: {}", d.reason);
    assert!(w.applied.is_empty(), "{:?}", w.applied);
    assert!(w.facts.is_some(), "the new role still exists");
    assert_eq!(w.record.pending, None);
    assert_eq!(w.record.stage, Stage::Clean);
}

#[test]
fn a_password_deleted_by_dormant_and_set_again_is_evaluated_again() {
    let facts = user("carol")
        .unique_id("AIDACAROLCAROLCAROL1")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(2)))
        .password(days(300), Some(days(50)))
        .build();
    let mut w = World::new(facts, Subject::password(user("carol").build().principal));
    assert_eq!(w.run(days(0)).step(), Some(Step::Notice));
    assert_eq!(w.record.login_profile_created_at, Some(t0() - days(300)));
    assert_eq!(w.run(days(7)).step(), Some(Step::Delete));
    assert_eq!(w.record.stage, Stage::Deleted);
    assert_eq!(
        w.record.login_profile_created_at,
        Some(t0() - days(300)),
        "the date of the password it deleted"
    );

    // An administrator sets a new console password on day 10 (same user, same id).
    w.facts_mut().login_profile = Some(dormant::domain::LoginProfile {
        created_at: t0() + days(10),
    });
    let d = w.run(days(11));
    assert_eq!(d.step(), None);
    assert!(
        d.reason.starts_with("re-created: the console password was created at 2026-06-11T00:00:00Z, after the one created at 2025-08-05T00:00:00Z that dormant recorded as deleted"),
        "{}",
        d.reason
    );
    assert_eq!(w.record.stage, Stage::Clean);
    assert_eq!(w.record.login_profile_created_at, Some(t0() + days(10)));

    // Never used: 45 days after it was set it is noticed again.
    assert_eq!(w.run(days(54)).step(), None);
    assert_eq!(w.run(days(55)).step(), Some(Step::Notice));
}

#[test]
fn a_password_set_again_while_on_the_ladder_loses_dormant_tags_and_starts_clean() {
    let facts = user("dave")
        .unique_id("AIDADAVEDAVEDAVEDAV1")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(2)))
        .password(days(300), None)
        .tag("team", "ops")
        .build();
    let mut w = World::new(facts, Subject::password(user("dave").build().principal));
    assert_eq!(w.run(days(0)).step(), Some(Step::Notice));
    assert!(w
        .tag("dormant:password:stage")
        .is_some_and(|v| v.starts_with("noticed")));

    w.facts_mut().login_profile = Some(dormant::domain::LoginProfile {
        created_at: t0() + days(3),
    });
    let d = w.run(days(4));
    assert_eq!(d.step(), Some(Step::Release), "dormant's own tags come off");
    assert_eq!(
        d.effects(),
        vec![Effect::RemoveTags {
            keys: vec![
                "dormant:password:stage".into(),
                dormant::domain::tag::CREDENTIALS_TAG.into()
            ]
        }]
    );
    assert!(d.reason.starts_with("re-created: "), "{}", d.reason);
    assert_eq!(w.record.stage, Stage::Clean, "no cool-off: a new password");
    assert_eq!(w.tag("team"), Some("ops"));
}

#[test]
fn the_same_identity_read_again_is_not_re_created() {
    // A record without an id (written before ids were kept) adopts it; no reset.
    let mut w = World::whole(role("etl").created(days(120)).build());
    w.run(days(0));
    assert_eq!(w.record.unique_id, None);
    w.facts_mut().unique_id = Some(OLD.into());
    assert_eq!(w.run(days(7)).step(), Some(Step::Quarantine));
    assert_eq!(w.record.unique_id.as_deref(), Some(OLD));

    // A read that does not give the id changes nothing either.
    w.facts_mut().unique_id = None;
    assert_eq!(w.run(days(23)).step(), Some(Step::Delete));
    assert_eq!(w.record.unique_id.as_deref(), Some(OLD));

    // The credential report (bulk reads) has whole seconds, GetLoginProfile fractions: the
    // same password, not a newer one.
    let facts = user("erin")
        .created(days(400))
        .password(days(300), None)
        .build();
    let mut w = World::new(facts, Subject::password(user("erin").build().principal));
    assert_eq!(w.run(days(0)).step(), Some(Step::Notice));
    let exact = t0() - days(300) + chrono::Duration::milliseconds(750);
    w.facts_mut().login_profile = Some(dormant::domain::LoginProfile { created_at: exact });
    assert_eq!(w.run(days(7)).step(), Some(Step::Delete));
}

#[test]
fn a_protected_name_taken_again_is_only_noted_in_the_record() {
    let mut w = World::whole(
        role_at("/aws-service-role/", "AWSServiceRoleForX")
            .unique_id(OLD)
            .created(days(500))
            .build(),
    );
    w.record.stage = Stage::Exempt;
    w.record.version = 3;
    w.record.unique_id = Some(OLD.into());
    w.facts_mut().unique_id = Some(NEW.into());
    let d = w.run(days(0));
    assert_eq!(
        (d.step(), d.gate().cloned(), d.effects().to_vec()),
        (None, None, vec![])
    );
    assert_eq!(w.record.unique_id.as_deref(), Some(NEW));
    assert!(w.applied.is_empty());
}

#[test]
fn an_access_key_of_a_re_created_user_is_simply_gone() {
    let facts = user("frank")
        .unique_id("AIDAFRANKFRANKFRANK1")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(1)))
        .key(KEY_B, true, days(100), Some(days(60)))
        .build();
    let subject = Subject::access_key(facts.principal.clone(), KEY_B);
    let mut w = World::new(facts, subject);
    assert_eq!(w.run(days(0)).step(), Some(Step::Notice));
    w.facts = Some(
        user("frank")
            .unique_id("AIDAFRANKNEWNEWNEWN2")
            .created(-days(1))
            .build(),
    );
    let d = w.run(days(2));
    assert_eq!(w.record.stage, Stage::Deleted, "{}", d.reason);
    assert!(
        d.reason.contains("the access key no longer exists"),
        "{}",
        d.reason
    );
}

#[test]
fn a_first_step_cut_short_is_not_finished_on_a_new_identity() {
    // The record was never stored with an id; its notice intent was, and then the run died.
    let mut w = World::whole(role("tmp").unique_id(OLD).created(days(120)).build());
    let d = w.decide(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    w.record.pending = Some(dormant::domain::Intent::new(
        Step::Notice,
        t0(),
        d.effects().to_vec(),
        d.after().unwrap().clone(),
    ));
    w.record.version = 1;
    assert_eq!(w.record.unique_id, None);
    w.facts = Some(role("tmp").unique_id(NEW).created(-days(1)).build());

    let d = w.run(days(2));
    assert_eq!(d.step(), None, "{}", d.reason);
    assert!(w.applied.is_empty(), "{:?}", w.applied);
    assert_eq!(w.record.stage, Stage::Clean);
    assert_eq!(w.record.unique_id.as_deref(), Some(NEW));
}

#[test]
fn an_interrupted_restore_is_left_for_restore_to_finish_not_started_clean() {
    let mut w = World::whole(role("etl").unique_id(OLD).created(days(120)).build());
    w.run(days(0));
    w.run(days(7));
    w.run(days(23));
    assert_eq!(w.record.stage, Stage::Deleted);
    // `dormant restore` created the role (new id, its marker set in the create call) and died.
    let marker = format!("{OLD}@2026-06-24T00:00:00.000000Z");
    w.facts = Some(
        role("etl")
            .unique_id(NEW)
            .created(-days(24))
            .tag("dormant:restored-from", &marker)
            .build(),
    );
    let d = w.run(days(25));
    assert_eq!(d.step(), None);
    assert!(
        d.reason.contains("interrupted `dormant restore`"),
        "{}",
        d.reason
    );
    assert_eq!(
        w.record.stage,
        Stage::Deleted,
        "restore can still finish it"
    );

    // The same tag in an owner's spelling proves nothing: a stranger's role starts clean.
    w.facts = Some(
        role("etl")
            .unique_id(NEW)
            .created(-days(24))
            .tag("Dormant:Restored-From", &marker)
            .build(),
    );
    w.run(days(26));
    assert_eq!(w.record.stage, Stage::Clean);
}

#[test]
fn a_clean_record_whose_role_still_carries_dormants_deny_is_repaired() {
    let mut w = World::whole(role("ops-admin").unique_id(OLD).created(days(200)).build());
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.stage, Stage::Quarantined);
    // A run that protected it (the CLI caller's name) left it exempt with the deny attached.
    w.record.stage = Stage::Clean;
    assert!(w.facts().has_quarantine_policy);
    let d = w.run(days(8));
    assert_eq!(d.step(), Some(Step::Release), "{}", d.reason);
    assert!(d.effects().contains(&Effect::DeleteQuarantinePolicy));
    assert!(d.reason.starts_with("repaired"), "{}", d.reason);
    assert_eq!(w.record.stage, Stage::Clean);
}

#[test]
fn a_new_identity_carrying_a_copy_of_dormants_deny_is_not_released_by_the_repair() {
    let mut w = World::whole(role("etl").unique_id(OLD).created(days(200)).build());
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.stage, Stage::Quarantined);
    // Replaced outside dormant by a role built from the quarantined one, deny included.
    w.facts = Some(role("etl").unique_id(NEW).created(-days(8)).build());
    w.facts_mut().has_quarantine_policy = true;
    w.run(days(9));
    assert_eq!(w.record.stage, Stage::Clean, "reset for the new identity");
    let d = w.run(days(10));
    assert!(
        d.effects().is_empty(),
        "the copied deny is not dormant's to lift: {d:?}"
    );
}

#[test]
fn a_restore_marker_on_an_identity_older_than_its_snapshot_is_not_a_restore() {
    let mut w = World::whole(role("etl").unique_id(OLD).created(days(120)).build());
    w.run(days(0));
    w.run(days(7));
    w.run(days(23));
    // The marker names a snapshot taken after this role was created: not dormant's restore.
    let marker = format!("{OLD}@2026-06-30T00:00:00.000000Z");
    w.facts = Some(
        role("etl")
            .unique_id(NEW)
            .created(-days(24))
            .tag("dormant:restored-from", &marker)
            .build(),
    );
    w.run(days(31));
    assert_eq!(w.record.stage, Stage::Clean, "judged as a new identity");
}
