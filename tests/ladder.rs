//! The decision core walked through the ladder of docs/design.md, 'The ladder' and 'Decisions and guards', with a fake clock.
//! Each test reads as a story: an identity, a date, what dormant does.

use chrono::Duration;
use dormant::domain::policy::Exemptions;
use dormant::domain::tag::{TAG_EXEMPT, TAG_EXEMPT_REASON, TAG_EXEMPT_UNTIL};
use dormant::domain::{
    approve, dormant_subjects, undo, Budget, DeleteMode, Effect, Gate, PrincipalKind, Record,
    Stage, Step, Subject,
};

use crate::support::core_sim::*;

fn step_of(w: &mut World, at: Duration) -> Option<Step> {
    w.run(at).step()
}

#[test]
fn an_unused_role_walks_notice_quarantine_delete() {
    let mut w = World::whole(role("old-deploy").created(days(120)).build());

    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    assert!(d.reason.contains("unused for 120 days"), "{}", d.reason);
    assert_eq!(w.record.stage, Stage::Noticed);
    assert_eq!(
        w.tag("dormant:stage"),
        Some("noticed next quarantine at 2026-06-08T00:00:00Z"),
        "one tag says the stage and what comes next"
    );
    assert_eq!(w.facts().tags.len(), 1);
    assert!(!w.facts().has_quarantine_policy, "a notice only tags");

    assert_eq!(step_of(&mut w, days(6)), None, "quarantine waits 7 days");
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::Quarantine));
    assert!(w.facts().has_quarantine_policy);
    assert_eq!(
        w.tag("dormant:stage"),
        Some("quarantined next delete at 2026-06-24T00:00:00Z"),
        "roles skip key deactivation"
    );
    assert_eq!(w.record.next_due_at, Some(t0() + days(23)));

    assert_eq!(step_of(&mut w, days(22)), None);
    let d = w.run(days(23));
    assert_eq!(d.step(), Some(Step::Delete));
    assert_eq!(
        d.effects(),
        vec![Effect::TakeSnapshot, Effect::DeletePrincipal],
        "the snapshot is taken before anything is torn down"
    );
    assert_eq!(w.record.stage, Stage::Deleted);
    assert!(w.facts.is_none());
    assert_eq!(step_of(&mut w, days(60)), None, "nothing after deletion");
}

#[test]
fn a_user_with_two_keys_only_loses_the_active_one() {
    let facts = user("alice")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(200)))
        .key(KEY_B, false, days(300), None)
        .password(days(400), Some(days(150)))
        .build();
    let mut w = World::whole(facts);

    assert_eq!(step_of(&mut w, days(0)), Some(Step::Notice));
    assert_eq!(step_of(&mut w, days(7)), Some(Step::Quarantine));
    assert!(w
        .tag("dormant:stage")
        .is_some_and(|v| v.starts_with("quarantined next deactivate_keys at ")));
    assert_eq!(step_of(&mut w, days(13)), None);
    let d = w.run(days(14));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    assert_eq!(
        d.effects()[0],
        Effect::DeactivateKeys {
            key_ids: vec![KEY_A.to_string()]
        }
    );
    assert_eq!(
        w.record.keys_deactivated,
        vec![KEY_A.to_string()],
        "only the key dormant turned off"
    );
    assert!(!w.key_active(KEY_A) && !w.key_active(KEY_B));
    assert_eq!(step_of(&mut w, days(29)), None);
    assert_eq!(step_of(&mut w, days(30)), Some(Step::Delete));
    assert_eq!(w.record.stage, Stage::Deleted);
}

#[test]
fn a_lone_unused_key_on_an_active_user_walks_the_short_ladder() {
    let facts = user("bob")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(1)))
        .key(KEY_B, true, days(100), Some(days(60)))
        .build();
    let subjects = dormant_subjects(&facts, &dormant::domain::Policy::default(), t0());
    let key_subject = Subject::access_key(facts.principal.clone(), KEY_B);
    assert_eq!(
        subjects,
        vec![key_subject.clone()],
        "the user is active; only key B is idle past 45 days"
    );

    let mut w = World::new(facts, key_subject);
    assert_eq!(step_of(&mut w, days(0)), Some(Step::Notice));
    assert!(w
        .tag(&format!("dormant:key:{KEY_B}:stage"))
        .is_some_and(|v| v.starts_with("noticed next deactivate_keys at ")));
    assert_eq!(
        w.tag("dormant:stage"),
        None,
        "the user itself is not marked"
    );
    assert_eq!(step_of(&mut w, days(7)), Some(Step::DeactivateKeys));
    assert!(w.key_active(KEY_A) && !w.key_active(KEY_B));
    assert!(
        !w.facts().has_quarantine_policy,
        "key-level findings never quarantine the user"
    );
    assert_eq!(step_of(&mut w, days(23)), Some(Step::Delete));
    assert!(w.facts().access_key(KEY_B).is_none());
    assert!(w.facts().access_key(KEY_A).is_some());
    assert_eq!(
        w.tag(&format!("dormant:key:{KEY_B}:stage")),
        None,
        "its tags go with it"
    );
    assert_eq!(w.record.stage, Stage::Deleted);
}

#[test]
fn an_unused_password_is_noticed_then_its_login_profile_deleted() {
    let facts = user("carol")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(2)))
        .password(days(300), Some(days(50)))
        .build();
    let subjects = dormant_subjects(&facts, &dormant::domain::Policy::default(), t0());
    let pw = Subject::password(facts.principal.clone());
    assert_eq!(subjects, vec![pw.clone()]);

    let mut w = World::new(facts, pw);
    assert_eq!(step_of(&mut w, days(0)), Some(Step::Notice));
    assert!(w
        .tag("dormant:password:stage")
        .is_some_and(|v| v.starts_with("noticed next delete at ")));
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::Delete));
    assert!(d.effects().contains(&Effect::DeleteLoginProfile));
    assert!(w.facts().login_profile.is_none());
    assert!(w.key_active(KEY_A), "the user keeps working with its key");
}

#[test]
fn an_exemption_tag_keeps_a_role_off_the_ladder() {
    let mut w = World::whole(
        role("legacy")
            .created(days(500))
            .tag(TAG_EXEMPT, "true")
            .tag(TAG_EXEMPT_REASON, "DR only")
            .build(),
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), None);
    assert!(d.reason.contains("DR only"), "{}", d.reason);
    assert!(w.applied.is_empty());

    // "false" is the one value that does not exempt.
    w.facts_mut().tags.insert(TAG_EXEMPT.into(), "False".into());
    assert_eq!(step_of(&mut w, days(1)), Some(Step::Notice));
}

#[test]
fn an_expired_exemption_is_acted_on_and_says_so() {
    let mut w = World::whole(
        role("was-exempt")
            .created(days(500))
            .tag(TAG_EXEMPT, "yes")
            .tag(TAG_EXEMPT_UNTIL, "2026-05-31")
            .build(),
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    assert!(d.reason.contains("lapsed"), "{}", d.reason);

    // Valid through the whole day named.
    let mut w = World::whole(
        role("still-exempt")
            .created(days(500))
            .tag(TAG_EXEMPT, "yes")
            .tag(TAG_EXEMPT_UNTIL, "2026-06-01")
            .build(),
    );
    assert_eq!(w.run(Duration::hours(23)).step(), None);
    assert_eq!(w.run(days(1)).step(), Some(Step::Notice));
}

fn glob_policy(globs: &[&str]) -> dormant::domain::Policy {
    let mut p = dormant::domain::Policy::default();
    let globs: Vec<String> = globs.iter().map(|s| s.to_string()).collect();
    p.exemptions = Exemptions::new(&globs, false, days(365), vec![]).unwrap();
    p
}

#[test]
fn configured_globs_match_path_and_name_like_fnmatch() {
    for (path, name, exempt) in [
        ("/", "breakglass-role", true),
        ("/", "security-audit", true),
        ("/team/", "security-audit", false),
        ("/security-tools/", "scanner", true),
        ("/", "deploy", false),
    ] {
        let mut w = World::whole(role_at(path, name).created(days(500)).build());
        w.policy = glob_policy(&["/breakglass-role", "/security-*"]);
        let d = w.run(days(0));
        assert_eq!(d.step().is_none(), exempt, "{path}{name}: {}", d.reason);
    }
}

#[test]
fn protected_identities_are_never_touched_even_if_tracked() {
    let cases = [
        role_at(
            "/aws-service-role/elasticbeanstalk.amazonaws.com/",
            "AWSServiceRoleForElasticBeanstalk",
        ),
        role_at(
            "/aws-reserved/sso.amazonaws.com/",
            "AWSReservedSSO_Admin_0123456789abcdef",
        ),
        role("OrganizationAccountAccessRole"),
        role("dormant-controller"),
    ];
    for b in cases {
        let facts = b.created(days(900)).build();
        let mut w = World::whole(facts.clone());
        w.policy.exemptions.controller = vec![(PrincipalKind::Role, "dormant-controller".into())];
        for day in [0, 7, 30, 60] {
            let d = w.run(days(day));
            assert!(
                d.effects().is_empty() && d.step().is_none(),
                "{}: {:?}",
                facts.principal.name,
                d
            );
        }
        // Even a record left from before (say the controller role was renamed into protection).
        w.record.stage = Stage::Quarantined;
        w.record.stage_since = Some(t0());
        w.record.version = 3;
        let d = w.run(days(90));
        assert!(
            d.effects().is_empty(),
            "protected: never even released by dormant"
        );
        assert_eq!(w.record.stage, Stage::Exempt);
        assert!(w.applied.is_empty());
        let refused =
            undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(91), "x").unwrap_err();
        assert!(refused.to_string().contains("protected"), "{refused}");
    }
}

#[test]
fn a_role_used_again_mid_ladder_is_released_then_cools_off() {
    let mut w = World::whole(
        role("comeback")
            .created(days(200))
            .role_used(days(100))
            .build(),
    );
    assert_eq!(step_of(&mut w, days(0)), Some(Step::Notice));
    assert_eq!(step_of(&mut w, days(7)), Some(Step::Quarantine));

    w.facts_mut().role_last_used = Some(t0() + days(9));
    let d = w.run(days(10));
    assert_eq!(d.step(), Some(Step::Release));
    assert!(d.reason.contains("used at"), "{}", d.reason);
    assert_eq!(w.record.stage, Stage::Released);
    assert!(!w.facts().has_quarantine_policy);
    assert_eq!(w.tag("dormant:stage"), None, "dormant's tags are removed");

    // Idle again past the threshold, but inside the 30-day cool-off: left alone.
    w.policy.inactivity.threshold = days(10);
    let d = w.run(days(30));
    assert_eq!(d.step(), None);
    assert!(d.reason.contains("cool-off"), "{}", d.reason);
    assert_eq!(
        step_of(&mut w, days(40)),
        Some(Step::Notice),
        "after cool-off it starts again from notice"
    );
}

#[test]
fn a_late_run_never_collapses_two_steps() {
    let mut w = World::whole(role("late").created(days(300)).build());
    assert_eq!(step_of(&mut w, days(0)), Some(Step::Notice));
    // The controller was down for two months.
    assert_eq!(step_of(&mut w, days(60)), Some(Step::Quarantine));
    assert_eq!(
        w.record.next_due_at,
        Some(t0() + days(76)),
        "the wait counts from the late quarantine"
    );
    assert_eq!(step_of(&mut w, days(60)), None, "one step per run");
    assert_eq!(step_of(&mut w, days(75)), None);
    assert_eq!(step_of(&mut w, days(76)), Some(Step::Delete));
}

#[test]
fn young_identities_and_recent_use_are_left_alone() {
    let mut w = World::whole(role("new").created(days(30)).build());
    assert_eq!(step_of(&mut w, days(0)), None);
    let mut w = World::whole(role("busy").created(days(300)).role_used(days(3)).build());
    assert_eq!(step_of(&mut w, days(0)), None);
    // An old user with a key issued ten days ago is not "unused for 300 days".
    let mut w = World::whole(
        user("fresh-key")
            .created(days(300))
            .key(KEY_A, true, days(10), None)
            .build(),
    );
    assert!(dormant_subjects(w.facts(), &w.policy, t0()).is_empty());
    assert_eq!(step_of(&mut w, days(0)), None);
    assert_eq!(step_of(&mut w, days(79)), None);
    assert_eq!(
        step_of(&mut w, days(80)),
        Some(Step::Notice),
        "90 days after the key was issued"
    );
}

#[test]
fn dry_run_decides_but_changes_nothing() {
    let mut w = World::whole(role("dry").created(days(200)).build());
    w.policy.dry_run = true;
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    assert_eq!(d.gate(), Some(&Gate::DryRun));
    assert!(!d.effects().is_empty(), "it says what it would do");
    assert!(w.applied.is_empty());
    assert_eq!(w.record.stage, Stage::Clean);
}

#[test]
fn the_breaker_stops_access_cutting_steps_but_not_notices() {
    let mut w = World::whole(role("many").created(days(200)).build());
    w.budget = Budget {
        actions_this_run: 25,
        ..Budget::default()
    };
    assert_eq!(
        w.run(days(0)).gate(),
        Some(&Gate::Proceed),
        "notices are only tags"
    );
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::Quarantine));
    match d.gate().cloned().unwrap_or(Gate::Proceed) {
        Gate::Breaker(trip) => {
            assert!(trip.newly_tripped);
            assert!(trip.cause.contains("more than 25"), "{}", trip.cause);
        }
        other => panic!("expected the breaker, got {other:?}"),
    }
    assert!(!w.facts().has_quarantine_policy);

    // 24 actions: the 25th is allowed.
    w.budget = Budget {
        actions_this_run: 24,
        identities_in_account: 1000,
        ..Budget::default()
    };
    assert_eq!(w.run(days(7)).gate(), Some(&Gate::Proceed));
}

#[test]
fn the_breaker_trips_on_the_quarantine_fraction_once_min_count_is_reached() {
    let d = |quarantined: u32, identities: u32| {
        let mut w = World::whole(role("q").created(days(200)).build());
        w.run(days(0));
        w.budget = Budget {
            quarantines_in_window: quarantined,
            identities_in_account: identities,
            ..Budget::default()
        };
        w.run(days(7)).gate().cloned().unwrap_or(Gate::Proceed)
    };
    assert_eq!(
        d(3, 20),
        Gate::Proceed,
        "4 of 20 is 20 % but below min_count 5"
    );
    assert!(matches!(d(4, 20), Gate::Breaker(_)), "5 of 20 is 25 %");
    assert_eq!(d(9, 100), Gate::Proceed, "10 of 100 is not more than 10 %");
    assert!(matches!(d(10, 100), Gate::Breaker(_)), "11 of 100 is");
}

#[test]
fn deletion_waits_for_approval_when_configured() {
    let mut w = World::whole(role("needs-ok").created(days(200)).build());
    w.policy.ladder.delete = DeleteMode::Approval;
    w.run(days(0));
    w.run(days(7));
    let d = w.run(days(23));
    assert_eq!(d.step(), Some(Step::RequestApproval));
    assert_eq!(w.record.stage, Stage::PendingDelete);
    assert_eq!(
        w.tag("dormant:stage"),
        Some("pending_delete awaiting approval")
    );
    assert_eq!(
        step_of(&mut w, days(100)),
        None,
        "no deletion without approval"
    );
    assert!(w.facts.is_some());

    assert!(
        approve(
            &Record::new(w.record.subject.clone()),
            &w.policy,
            "ops",
            t0()
        )
        .is_err(),
        "only a pending deletion can be approved"
    );
    w.record = approve(
        &w.record,
        &w.policy,
        "arn:aws:iam::111122223333:user/ops",
        t0() + days(101),
    )
    .unwrap();
    assert!(
        approve(&w.record, &w.policy, "someone-else", t0() + days(101)).is_err(),
        "approved once"
    );
    assert_eq!(step_of(&mut w, days(101)), Some(Step::Delete));
    assert!(w.facts.is_none());
}

#[test]
fn delete_never_stops_at_the_last_reversible_rung() {
    let mut w = World::whole(role("keep").created(days(200)).build());
    w.policy.ladder.delete = DeleteMode::Never;
    w.run(days(0));
    w.run(days(7));
    assert_eq!(
        w.tag("dormant:stage"),
        Some("quarantined"),
        "the stage alone: nothing is scheduled"
    );
    assert_eq!(step_of(&mut w, days(365)), None);
    assert_eq!(w.record.stage, Stage::Quarantined);
}

#[test]
fn undo_reverses_exactly_what_dormant_did() {
    let facts = user("dave")
        .created(days(400))
        .key(KEY_A, true, days(300), None)
        .key(KEY_B, false, days(300), None)
        .tag(TAG_EXEMPT, "false")
        .build();
    let mut w = World::whole(facts);
    w.run(days(0));
    w.run(days(7));
    w.run(days(14));
    assert_eq!(w.record.stage, Stage::KeysDeactivated);

    let d = undo(
        &w.record,
        w.facts.as_ref(),
        &w.policy,
        t0() + days(15),
        "needed for the audit",
    )
    .unwrap();
    assert_eq!(d.step(), Some(Step::Release));
    assert!(d.effects().contains(&Effect::ReactivateKeys {
        key_ids: vec![KEY_A.to_string()]
    }));
    w.commit(&d);
    assert!(w.key_active(KEY_A), "dormant's key is back on");
    assert!(
        !w.key_active(KEY_B),
        "the owner's deactivated key stays off"
    );
    assert!(!w.facts().has_quarantine_policy);
    assert_eq!(w.tag(TAG_EXEMPT), Some("false"), "other tags are untouched");
    assert_eq!(w.tag("dormant:stage"), None);
    assert_eq!(w.record.stage, Stage::Released);
    assert!(w.record.reason.contains("needed for the audit"));

    let again = undo(
        &w.record,
        w.facts.as_ref(),
        &w.policy,
        t0() + days(15),
        "again",
    )
    .unwrap_err();
    assert!(again.to_string().contains("already released"), "{again}");
    let never = undo(
        &Record::new(w.record.subject.clone()),
        w.facts.as_ref(),
        &w.policy,
        t0(),
        "x",
    )
    .unwrap_err();
    assert!(never.to_string().contains("not tracked"), "{never}");
}

#[test]
fn an_exemption_added_during_quarantine_releases_and_its_expiry_restarts_from_notice() {
    let mut w = World::whole(role("saved").created(days(200)).build());
    w.run(days(0));
    w.run(days(7));
    w.facts_mut().tags.insert(TAG_EXEMPT.into(), "true".into());
    w.facts_mut()
        .tags
        .insert(TAG_EXEMPT_UNTIL.into(), "2026-07-31".into());
    let d = w.run(days(8));
    assert_eq!(d.step(), Some(Step::Release));
    assert_eq!(w.record.stage, Stage::Exempt);
    assert!(!w.facts().has_quarantine_policy);
    assert_eq!(
        w.tag(TAG_EXEMPT),
        Some("true"),
        "the exemption tag is never removed by dormant"
    );

    assert_eq!(step_of(&mut w, days(30)), None);
    let d = w.run(days(61));
    assert_eq!(d.step(), Some(Step::Notice), "{}", d.reason);
    assert_eq!(w.record.stage, Stage::Noticed);
}

#[test]
fn a_crash_between_intent_and_commit_is_completed_not_redecided() {
    let mut w = World::whole(
        user("erin")
            .created(days(400))
            .key(KEY_A, true, days(300), None)
            .key(KEY_B, true, days(300), None)
            .build(),
    );
    w.run(days(0));
    w.run(days(7));
    let d = w.decide(days(14));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    // The intent is stored, then the process dies after turning off only key A.
    w.record.pending = Some(dormant::domain::Intent::new(
        Step::DeactivateKeys,
        t0() + days(14),
        d.effects().to_vec(),
        d.after().unwrap().clone(),
    ));
    w.facts_mut().access_keys[0].active = false;

    let meanwhile = w.run(days(14) + Duration::minutes(5));
    assert!(
        meanwhile.effects().is_empty() && meanwhile.reason.contains("in progress"),
        "another run may still own it"
    );
    let resumed = w.run(days(14) + Duration::minutes(15));
    assert_eq!(
        resumed.step(),
        Some(Step::DeactivateKeys),
        "{}",
        resumed.reason
    );
    assert_eq!(
        resumed.effects()[0],
        Effect::DeactivateKeys {
            key_ids: vec![KEY_B.to_string()]
        },
        "re-planned on the fresh read: the key still active"
    );
    assert_eq!(
        w.record.keys_deactivated,
        vec![KEY_A.to_string(), KEY_B.to_string()],
        "both keys recorded, so undo restores both"
    );
    assert!(w.record.pending.is_none());
}

#[test]
fn an_identity_deleted_outside_dormant_stops_being_tracked() {
    let mut w = World::whole(role("gone").created(days(200)).build());
    w.run(days(0));
    w.facts = None;
    let d = w.run(days(3));
    assert!(d.effects().is_empty());
    assert_eq!(w.record.stage, Stage::Deleted);
    assert!(w.record.reason.contains("outside dormant"));
    assert_eq!(w.record.next_due_at, None);
}

#[test]
fn a_resumed_password_delete_whose_profile_is_gone_still_removes_its_stage_tags() {
    let facts = user("dave")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(2)))
        .password(days(300), Some(days(50)))
        .build();
    let pw = Subject::password(facts.principal.clone());
    let mut w = World::new(facts, pw);
    w.run(days(0));
    let d = w.decide(days(7));
    assert_eq!(d.step(), Some(Step::Delete));
    // The login profile was deleted, then the run died before untagging and committing.
    w.record.pending = Some(dormant::domain::Intent::new(
        Step::Delete,
        t0() + days(7),
        d.effects().to_vec(),
        d.after().unwrap().clone(),
    ));
    w.facts_mut().login_profile = None;
    w.facts_mut().password_last_used = None;

    let resumed = w.run(days(7) + Duration::minutes(20));
    assert_eq!(resumed.step(), Some(Step::Delete), "{}", resumed.reason);
    assert!(
        matches!(resumed.effects(), [Effect::RemoveTags { keys }] if !keys.is_empty()),
        "{resumed:?}"
    );
    assert_eq!(w.record.stage, Stage::Deleted);
    assert_eq!(w.tag("dormant:password:stage"), None);
}

/// A role carrying `n` tags of its owner's.
fn role_with_tags(name: &str, n: usize) -> FactsBuilder {
    (0..n).fold(role(name).created(days(120)), |b, i| {
        b.tag(&format!("owner-{i:02}"), "x")
    })
}

#[test]
fn without_room_for_the_stage_tag_each_step_still_happens_and_says_where_its_state_is() {
    let mut w = World::whole(role_with_tags("full", 50).build());
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    assert_eq!(
        d.effects(),
        &[] as &[Effect],
        "no tag call that IAM would refuse"
    );
    let no_room = "no room for dormant's tag (50 of 50 used); state kept in DynamoDB only";
    assert!(d.reason.ends_with(no_room), "{}", d.reason);
    assert!(w.record.reason.ends_with(no_room), "the record says it too");

    let d = w.run(days(7));
    assert_eq!(d.effects().to_vec(), vec![Effect::PutQuarantinePolicy]);
    assert_eq!(w.record.stage, Stage::Quarantined);
    assert_eq!(w.facts().tags.len(), 50);

    // The owner drops a tag: the next step has room again.
    w.facts_mut().tags.remove("owner-00");
    w.policy.ladder.delete = DeleteMode::Approval;
    let d = w.run(days(23));
    assert_eq!(d.step(), Some(Step::RequestApproval));
    assert!(!d.reason.contains("no room"), "{}", d.reason);
    assert_eq!(
        w.tag("dormant:stage"),
        Some("pending_delete awaiting approval")
    );
}

#[test]
fn one_free_slot_takes_the_stage_tag() {
    let mut w = World::whole(role_with_tags("one-slot", 49).build());
    let d = w.run(days(0));
    assert!(matches!(d.effects(), [Effect::PutTags { tags }] if tags.len() == 1));
    assert_eq!(w.facts().tags.len(), 50);
    let d = w.run(days(7));
    assert!(!d.reason.contains("no room"), "written over in place");
    assert!(w
        .tag("dormant:stage")
        .is_some_and(|v| v.starts_with("quarantined")));
}

#[test]
fn the_old_three_tag_form_is_replaced_at_the_next_step_and_its_slots_count_as_free() {
    let mut w = World::whole(role_with_tags("upgraded", 47).build());
    w.run(days(0));
    // What versions before the single stage tag left: 47 + 3 = 50 tags.
    let tags = &mut w.facts_mut().tags;
    tags.insert("dormant:stage".into(), "noticed".into());
    tags.insert("dormant:next-step".into(), "quarantine".into());
    tags.insert("dormant:next-step-at".into(), "2026-06-08T00:00:00Z".into());

    let d = w.run(days(7));
    assert_eq!(d.effects()[0], Effect::PutQuarantinePolicy);
    assert_eq!(
        d.effects()[1],
        Effect::RemoveTags {
            keys: vec!["dormant:next-step".into(), "dormant:next-step-at".into()]
        }
    );
    assert!(matches!(&d.effects()[2], Effect::PutTags { .. }));
    assert_eq!(w.facts().tags.len(), 48);
}

#[test]
fn tag_keys_are_matched_as_iam_matches_them_without_case() {
    // IAM would write `dormant:stage` over `Dormant:Stage`: no new slot is needed.
    let mut w = World::whole(
        role_with_tags("shouting", 49)
            .tag("Dormant:Stage", "noticed")
            .build(),
    );
    let d = w.run(days(0));
    assert!(!d.reason.contains("no room"), "{}", d.reason);
    // IAM keeps one key, spelled as it first was; release removes it under that spelling.
    w.facts_mut().tags.remove("dormant:stage");
    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(1), "x").unwrap();
    assert_eq!(
        d.effects(),
        vec![Effect::RemoveTags {
            keys: vec!["Dormant:Stage".into()]
        }]
    );
}

const MARKER: &str = dormant::domain::tag::CREDENTIALS_TAG;

fn puts(e: &Effect) -> Vec<String> {
    match e {
        Effect::PutTags { tags } => tags.iter().map(|(k, _)| k.clone()).collect(),
        _ => vec![],
    }
}

/// Two idle keys of an active user, each on its own ladder.
fn two_idle_keys() -> (dormant::domain::Facts, Subject, Subject) {
    let facts = user("erin")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(60)))
        .key(KEY_B, true, days(300), Some(days(60)))
        .password(days(300), Some(days(1)))
        .build();
    let a = Subject::access_key(facts.principal.clone(), KEY_A);
    let b = Subject::access_key(facts.principal.clone(), KEY_B);
    (facts, a, b)
}

#[test]
fn a_credential_ladder_marks_its_user_in_its_first_tag_call_and_unmarks_it_with_its_last() {
    let (facts, a, b) = two_idle_keys();
    let mut w = World::new(facts, a.clone());
    let d = w.run(days(0));
    // One TagUser: the key's stage tag and the user's marker together.
    assert_eq!(
        d.effects()
            .iter()
            .filter(|e| matches!(e, Effect::PutTags { .. }))
            .count(),
        1
    );
    assert_eq!(
        puts(&d.effects()[0]),
        vec![format!("dormant:key:{KEY_A}:stage"), MARKER.to_string()]
    );
    // The second key's ladder finds the marker and writes only its own tag.
    let mut wb = World::new(w.facts().clone(), b.clone());
    let d = wb.run(days(0));
    assert_eq!(
        puts(&d.effects()[0]),
        vec![format!("dormant:key:{KEY_B}:stage")]
    );
    w.facts = wb.facts.clone();

    // Key A turned off (allowed: the user is marked), then deleted: B's ladder keeps the marker.
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    assert!(!d
        .effects()
        .iter()
        .any(|e| puts(e).contains(&MARKER.to_string())));
    let d = w.run(days(23));
    assert_eq!(d.step(), Some(Step::Delete));
    assert!(w.facts().access_key(KEY_A).is_none());
    assert!(w.tag(MARKER).is_some(), "key B's ladder still needs it");

    // Key B undone by the operator: the key is turned back on while the marker is there, and
    // the marker goes in the same UntagUser call as B's tag.
    wb.facts = w.facts.clone();
    let d = wb.run(days(7));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    assert!(!wb.key_active(KEY_B));
    let d = undo(
        &wb.record,
        wb.facts.as_ref(),
        &wb.policy,
        t0() + days(8),
        "needed",
    )
    .unwrap();
    assert_eq!(
        d.effects(),
        &[
            Effect::ReactivateKeys {
                key_ids: vec![KEY_B.to_string()]
            },
            Effect::RemoveTags {
                keys: vec![format!("dormant:key:{KEY_B}:stage"), MARKER.to_string()]
            }
        ]
    );
    wb.commit(&d);
    assert!(wb.key_active(KEY_B));
    assert!(wb.facts().tags.keys().all(|k| !k.starts_with("dormant:")));
}

#[test]
fn a_user_an_earlier_version_tagged_is_marked_before_its_key_is_turned_off() {
    let (facts, a, _) = two_idle_keys();
    let mut w = World::new(facts, a);
    w.run(days(0));
    // As an earlier version left it: the key's stage tag, no marker.
    w.facts_mut().tags.remove(MARKER);
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    assert_eq!(puts(&d.effects()[0]), vec![MARKER.to_string()]);
    assert!(matches!(d.effects()[1], Effect::DeactivateKeys { .. }));
    assert!(!w.key_active(KEY_A));
    // Its later steps find it there.
    let d = w.run(days(23));
    assert_eq!(d.step(), Some(Step::Delete));
    assert!(matches!(d.effects()[0], Effect::DeleteAccessKey { .. }));
    assert_eq!(
        w.tag(MARKER),
        None,
        "the last credential ladder took it off"
    );
}

#[test]
fn at_the_tag_limit_the_marker_goes_first_and_without_room_the_record_says_what_that_costs() {
    let (facts, a, _) = two_idle_keys();
    let crowded = |n: usize| {
        let mut f = facts.clone();
        for i in 0..n {
            f.tags.insert(format!("owner-{i:02}"), "x".into());
        }
        f
    };
    // One free slot (the other idle key keeps one): the marker, not the stage tag.
    let mut w = World::new(crowded(48), a.clone());
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    assert_eq!(d.effects().len(), 1);
    assert_eq!(puts(&d.effects()[0]), vec![MARKER.to_string()]);
    assert!(
        d.reason
            .contains("only the user's dormant:credentials marker written"),
        "{}",
        d.reason
    );
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::DeactivateKeys), "{}", d.reason);
    assert!(!w.key_active(KEY_A));

    // No free slot: nothing written, and the record says the keys cannot be turned off by
    // dormant's roles; the decision carries no write IAM would refuse.
    let mut w = World::new(crowded(50), a);
    let d = w.run(days(0));
    assert!(d.effects().is_empty(), "{:?}", d.effects());
    assert!(
        d.reason
            .contains("dormant's roles may not turn its keys off"),
        "{}",
        d.reason
    );
    let d = w.decide(days(7));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    assert!(
        !d.effects()
            .iter()
            .any(|e| matches!(e, Effect::PutTags { .. })),
        "{:?}",
        d.effects()
    );
}

#[test]
fn a_quarantine_policy_an_operator_attached_stays_through_undo_and_release() {
    let mut w = World::whole(role("incident").created(days(120)).build());
    w.run(days(0));
    w.facts_mut().has_quarantine_policy = true; // by hand
    let d = w.run(days(7));
    assert_eq!(d.step(), Some(Step::Quarantine));
    assert_eq!(w.record.quarantine_attached, Some(false));
    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(8), "x").unwrap();
    assert!(!d.effects().contains(&Effect::DeleteQuarantinePolicy));
    assert!(
        d.reason.contains("attached by someone else"),
        "{}",
        d.reason
    );
    w.commit(&d);
    assert!(w.facts().has_quarantine_policy);
    let d = w.run(days(9));
    assert!(d.effects().is_empty(), "not repaired: {d:?}");

    // dormant's own is detached, and so is one a record of an earlier version was quarantined with.
    let mut w = World::whole(role("own").created(days(120)).build());
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.quarantine_attached, Some(true));
    w.record.quarantine_attached = None;
    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(8), "x").unwrap();
    assert!(d.effects().contains(&Effect::DeleteQuarantinePolicy));
}

#[test]
fn undo_of_a_key_an_earlier_version_turned_off_at_the_tag_limit_makes_room_for_the_marker() {
    let mut facts = user("full")
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(1)))
        .key(KEY_B, true, days(300), Some(days(60)))
        .build();
    for i in 0..48 {
        facts.tags.insert(format!("owner-{i:02}"), "x".into());
    }
    let key = Subject::access_key(facts.principal.clone(), KEY_B);
    let mut w = World::new(facts, key);
    w.run(days(0));
    assert_eq!(w.facts().tags.len(), 50, "the key's tag and the marker");
    assert_eq!(step_of(&mut w, days(7)), Some(Step::DeactivateKeys));
    assert!(!w.key_active(KEY_B));
    // As an earlier version left it, full: the key's tag, no marker.
    w.facts_mut().tags.remove(MARKER);
    w.facts_mut().tags.insert("owner-late".into(), "x".into());
    assert_eq!(w.facts().tags.len(), 50);

    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(8), "x").unwrap();
    let stage = format!("dormant:key:{KEY_B}:stage");
    assert_eq!(
        d.effects()[0],
        Effect::RemoveTags {
            keys: vec![stage.clone()]
        }
    );
    assert_eq!(puts(&d.effects()[1]), vec![MARKER.to_string()]);
    assert!(matches!(d.effects()[2], Effect::ReactivateKeys { .. }));
    assert_eq!(
        d.effects()[3],
        Effect::RemoveTags {
            keys: vec![MARKER.to_string()]
        }
    );
    w.commit(&d);
    assert!(w.key_active(KEY_B));
    assert!(w.facts().tags.keys().all(|k| !k.starts_with("dormant:")));
}

/// A whole user with an idle key and `n` owner tags.
fn whole_user_with_tags(name: &str, n: usize) -> World {
    let mut facts = user(name)
        .created(days(400))
        .key(KEY_A, true, days(300), Some(days(200)))
        .build();
    for i in 0..n {
        facts.tags.insert(format!("owner-{i:02}"), "x".into());
    }
    World::whole(facts)
}

/// Review B: a whole user whose `dormant:stage` is missing (removed by hand, or never written at
/// the tag limit) still has its keys turned off and back on under dormant's roles, which allow
/// that only on a user carrying `dormant:stage` or `dormant:credentials`; with no room for
/// either, the step calls nothing and says why.
#[test]
fn a_whole_user_without_its_stage_tag_is_marked_before_its_keys_change_or_says_why_not() {
    // The stage tag removed by hand: written again before the keys go off.
    let mut w = whole_user_with_tags("handmade", 0);
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.stage, Stage::Quarantined);
    w.facts_mut().tags.remove("dormant:stage");
    let d = w.run(days(14));
    assert_eq!(d.step(), Some(Step::DeactivateKeys), "{}", d.reason);
    assert_eq!(puts(&d.effects()[0]), vec!["dormant:stage".to_string()]);
    assert!(matches!(d.effects()[1], Effect::DeactivateKeys { .. }));
    assert!(
        d.reason.contains("the user had no dormant:stage"),
        "{}",
        d.reason
    );
    assert!(!w.key_active(KEY_A));

    // Keys off, then the stage tag removed by hand at 49 tags: the release marks the user with
    // dormant:credentials to turn the key back on, and takes the marker off again.
    w.facts_mut().tags.remove("dormant:stage");
    for i in 0..49 {
        w.facts_mut()
            .tags
            .insert(format!("owner-{i:02}"), "x".into());
    }
    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(15), "x").unwrap();
    let first_guarded = d
        .effects()
        .iter()
        .position(|e| matches!(e, Effect::ReactivateKeys { .. }))
        .expect("the key is turned back on");
    assert!(
        d.effects()[..first_guarded]
            .iter()
            .any(|e| puts(e).contains(&MARKER.to_string())),
        "{:?}",
        d.effects()
    );
    assert!(d.reason.contains("marker written first"), "{}", d.reason);
    assert!(d.reason.contains("marker removed"), "{}", d.reason);
    w.commit(&d);
    assert!(w.key_active(KEY_A));
    assert_eq!(w.tag(MARKER), None);

    // At the tag limit from the start (state in DynamoDB only): no room for either tag. The key
    // step plans no key call and is blocked with a precise reason; nothing is committed.
    let mut w = whole_user_with_tags("full", 50);
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.stage, Stage::Quarantined);
    let d = w.run(days(14));
    assert_eq!(d.step(), Some(Step::DeactivateKeys));
    assert!(
        !d.effects()
            .iter()
            .any(|e| matches!(e, Effect::DeactivateKeys { .. })),
        "{:?}",
        d.effects()
    );
    let why = d.blocked().expect("blocked");
    assert!(
        why.contains("neither dormant:stage nor dormant:credentials")
            && why.contains("50 of 50")
            && why.contains("turn its access keys off"),
        "{why}"
    );
    assert!(w.key_active(KEY_A));
    assert_eq!(w.record.stage, Stage::Quarantined, "nothing committed");
}

/// Review F: a release that finds dormant's own quarantine already gone claims nothing after it,
/// so a deny-all an operator attaches by hand later is theirs; the claim is kept only while an SSM
/// execution of dormant's handed the quarantine may still attach it (24 hours).
#[test]
fn a_release_claims_a_quarantine_found_gone_only_while_its_ssm_execution_may_land() {
    let mut w = World::whole(role("handled").created(days(120)).build());
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.quarantine_attached, Some(true));
    w.facts_mut().has_quarantine_policy = false; // detached by hand
    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(8), "x").unwrap();
    assert!(!d.effects().contains(&Effect::DeleteQuarantinePolicy));
    w.commit(&d);
    assert_eq!(
        w.record.quarantine_attached,
        Some(false),
        "release writes no claim"
    );
    w.facts_mut().has_quarantine_policy = true; // an operator's incident response
    let d = w.run(days(20));
    assert!(d.effects().is_empty(), "the operator's deny stays: {d:?}");

    // Undone while an SSM execution had the quarantine: the claim holds for 24 hours.
    let claimed = |late: Duration| {
        let mut w = World::whole(role("late").created(days(120)).build());
        w.run(days(0));
        let d = w.decide(days(7));
        let planned = d.after().unwrap().clone();
        let mut intent = dormant::domain::Intent::new(
            Step::Quarantine,
            t0() + days(7),
            d.effects().to_vec(),
            planned,
        );
        intent.fallback = vec!["exec-1".into()];
        w.record.pending = Some(intent);
        let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(8), "x").unwrap();
        w.commit(&d);
        assert_eq!(w.record.quarantine_attached, Some(true));
        w.facts_mut().has_quarantine_policy = true; // the execution lands late
        w.run(days(8) + late)
            .effects()
            .contains(&Effect::DeleteQuarantinePolicy)
    };
    assert!(
        claimed(Duration::hours(2)),
        "repaired within the SSM timeout"
    );
    assert!(!claimed(Duration::hours(30)), "not after it");
}

/// Review G: a record of an earlier version (no ownership kept) released with dormant's policy
/// still attached is repaired as those versions did (any identity dormant noticed).
#[test]
fn an_earlier_versions_released_record_is_still_repaired() {
    let mut w = World::whole(role("older").created(days(120)).build());
    w.run(days(0));
    w.run(days(7));
    let d = undo(&w.record, w.facts.as_ref(), &w.policy, t0() + days(8), "x").unwrap();
    w.commit(&d);
    assert_eq!(w.record.stage, Stage::Released);
    assert_eq!(w.record.quarantine_attached, Some(false));
    // As an earlier version stored it, its SSM quarantine landing after the release.
    w.record.quarantine_attached = None;
    w.record.released_at = None;
    w.facts_mut().has_quarantine_policy = true;
    let d = w.run(days(9));
    assert!(
        d.effects().contains(&Effect::DeleteQuarantinePolicy),
        "{d:?}"
    );
    assert!(d.reason.contains("repaired"), "{}", d.reason);
}
