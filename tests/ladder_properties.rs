//! Properties of the decision core over random sequences of time, use, exemptions and operator
//! actions: a protected identity never gets a mutating step; stages only move up the ladder one
//! rung at a time, never before the step is due, or out to `released`/`exempt`.

use chrono::Duration;
use dormant::domain::tag::{TAG_EXEMPT, TAG_EXEMPT_UNTIL};
use dormant::domain::{approve, undo, DeleteMode, Gate, PrincipalKind, Stage, Step, Subject};
use proptest::prelude::*;

use crate::support::core_sim::*;

#[derive(Debug, Clone)]
enum Op {
    Wait(u16),
    UseAgain,
    Exempt { days_valid: Option<u8> },
    Unexempt,
    OwnerDeactivatesKey,
    Undo,
    Approve,
    DeletedOutside,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0u16..40).prop_map(Op::Wait),
        5 => Just(Op::UseAgain),
        5 => proptest::option::of(1u8..60).prop_map(|d| Op::Exempt { days_valid: d }),
        5 => Just(Op::Unexempt),
        5 => Just(Op::OwnerDeactivatesKey),
        5 => Just(Op::Undo),
        5 => Just(Op::Approve),
        1 => Just(Op::DeletedOutside),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Role,
    User,
    LoneKey,
    Password,
    ServiceLinked,
    Sso,
    OrgAccess,
    Controller,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        Just(Who::Role),
        Just(Who::User),
        Just(Who::LoneKey),
        Just(Who::Password),
        Just(Who::ServiceLinked),
        Just(Who::Sso),
        Just(Who::OrgAccess),
        Just(Who::Controller),
    ]
}

fn world_for(who: Who) -> World {
    let old = days(400);
    let mut w = match who {
        Who::Role => World::whole(role("r").created(old).build()),
        Who::User => World::whole(
            user("u")
                .created(old)
                .key(KEY_A, true, old, Some(days(200)))
                .key(KEY_B, false, old, None)
                .password(old, Some(days(150)))
                .build(),
        ),
        Who::LoneKey => {
            let f = user("k")
                .created(old)
                .key(KEY_A, true, old, Some(days(1)))
                .key(KEY_B, true, old, Some(days(100)))
                .build();
            let s = Subject::access_key(f.principal.clone(), KEY_B);
            World::new(f, s)
        }
        Who::Password => {
            let f = user("p")
                .created(old)
                .key(KEY_A, true, old, Some(days(1)))
                .password(old, Some(days(100)))
                .build();
            let s = Subject::password(f.principal.clone());
            World::new(f, s)
        }
        Who::ServiceLinked => World::whole(
            role_at("/aws-service-role/x.amazonaws.com/", "AWSServiceRoleForX")
                .created(old)
                .build(),
        ),
        Who::Sso => World::whole(
            role_at("/aws-reserved/sso.amazonaws.com/", "AWSReservedSSO_Admin_1")
                .created(old)
                .build(),
        ),
        Who::OrgAccess => World::whole(role("OrganizationAccountAccessRole").created(old).build()),
        Who::Controller => World::whole(role("dormant-controller").created(old).build()),
    };
    w.policy.exemptions.controller = vec![(PrincipalKind::Role, "dormant-controller".into())];
    w
}

/// The ladder of docs/design.md, 'The ladder', written out independently of the implementation.
fn next_rungs(subject: &Subject, stage: Stage) -> Vec<Stage> {
    use dormant::domain::SubjectKind as K;
    use Stage::*;
    match (subject.kind(), stage) {
        (K::Role, Noticed) => vec![Quarantined],
        (K::Role, Quarantined) => vec![PendingDelete, Deleted],
        (K::User, Noticed) => vec![Quarantined],
        // A user with no active key left skips key deactivation.
        (K::User, Quarantined) => vec![KeysDeactivated, PendingDelete, Deleted],
        (K::User | K::AccessKey, KeysDeactivated) => vec![PendingDelete, Deleted],
        (K::AccessKey, Noticed) => vec![KeysDeactivated],
        (K::Password, Noticed) => vec![PendingDelete, Deleted],
        (_, PendingDelete) => vec![Deleted],
        _ => vec![],
    }
}

fn is_protected(who: Who) -> bool {
    matches!(
        who,
        Who::ServiceLinked | Who::Sso | Who::OrgAccess | Who::Controller
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn protected_never_touched_and_stages_only_climb(
        who in who(),
        ops in proptest::collection::vec(op(), 1..60),
        approval in any::<bool>(),
        dry_run in any::<bool>(),
    ) {
        let mut w = world_for(who);
        if approval {
            w.policy.ladder.delete = DeleteMode::Approval;
        }
        w.policy.dry_run = dry_run;
        let mut now = t0();
        for op in ops {
            match op {
                Op::Wait(d) => now += Duration::days(i64::from(d)),
                Op::UseAgain => {
                    if let Some(f) = w.facts.as_mut() {
                        f.role_last_used = Some(now);
                        f.password_last_used = Some(now);
                        for k in f.access_keys.iter_mut() { k.last_used_at = Some(now); }
                    }
                }
                Op::Exempt { days_valid } => {
                    if let Some(f) = w.facts.as_mut() {
                        f.tags.insert(TAG_EXEMPT.into(), "true".into());
                        match days_valid {
                            Some(d) => { f.tags.insert(TAG_EXEMPT_UNTIL.into(), (now + Duration::days(i64::from(d))).to_rfc3339()); }
                            None => { f.tags.remove(TAG_EXEMPT_UNTIL); }
                        }
                    }
                }
                Op::Unexempt => { if let Some(f) = w.facts.as_mut() { f.tags.remove(TAG_EXEMPT); } }
                Op::OwnerDeactivatesKey => {
                    if let Some(k) = w.facts.as_mut().and_then(|f| f.access_keys.last_mut()) { k.active = false; }
                }
                Op::Undo => {
                    if let Ok(d) = undo(&w.record, w.facts.as_ref(), &w.policy, now, "prop") {
                        prop_assert!(!is_protected(who) || d.effects().is_empty());
                        let before = w.record.stage;
                        w.commit(&d);
                        prop_assert!(dry_run || matches!(w.record.stage, Stage::Released), "undo from {before} went to {}", w.record.stage);
                    }
                }
                Op::Approve => {
                    if let Ok(r) = approve(&w.record, &w.policy, "ops", now) { w.record = r; }
                }
                Op::DeletedOutside => w.facts = None,
            }
            let before = w.record.clone();
            let d = w.run_at(now);
            let after = &w.record;

            if is_protected(who) {
                prop_assert!(d.effects().is_empty(), "protected identity got effects: {:?}", d);
                prop_assert!(w.applied.is_empty());
            }
            if d.gate().is_some_and(|g| *g != Gate::Proceed) {
                prop_assert_eq!(&before, after, "a gated decision changes nothing");
                continue;
            }
            if before.stage == after.stage {
                continue;
            }
            match d.step() {
                Some(Step::Release) => prop_assert!(matches!(after.stage, Stage::Released | Stage::Exempt)),
                Some(Step::Notice) => {
                    prop_assert!(matches!(before.stage, Stage::Clean | Stage::Released | Stage::Exempt));
                    prop_assert_eq!(after.stage, Stage::Noticed);
                }
                Some(step) => {
                    prop_assert!(
                        next_rungs(&before.subject, before.stage).contains(&after.stage),
                        "{step}: {} -> {} is not a rung of the {} ladder", before.stage, after.stage, before.subject.kind().as_str()
                    );
                    let due = before.next_due_at.expect("a step was scheduled");
                    prop_assert!(now >= due, "{step} taken at {now} before it was due at {due}");
                    if step == Step::Delete && approval && before.subject.scope == dormant::domain::Scope::Whole {
                        prop_assert!(before.approval.is_some(), "deletion without approval");
                    }
                }
                None => prop_assert!(
                    matches!((before.stage, after.stage), (_, Stage::Deleted) | (_, Stage::Exempt) | (Stage::Exempt, Stage::Clean)),
                    "bookkeeping moved {} -> {}", before.stage, after.stage
                ),
            }
        }
    }
}
