//! The delete of a whole identity without `dormant:stage` (removed by hand, or no room for it):
//! dormant's roles tear down only an identity carrying it (docs/design.md, 'Permissions'), so
//! the step writes it first where it fits, and otherwise calls nothing and says why.

use dormant::domain::{Effect, Stage, Step};

use crate::support::core_sim::*;

/// A role quarantined by dormant, walked until its delete is decided, its stage tag removed by
/// hand just before; `extra` owner tags beside it.
fn delete_of_an_unmarked_role(extra: usize) -> (World, dormant::domain::Decision) {
    let mut w = World::whole(role("old-etl").created(days(400)).build());
    w.run(days(0));
    w.run(days(7));
    assert_eq!(w.record.stage, Stage::Quarantined);
    w.facts_mut().tags.retain(|k, _| k != "dormant:stage");
    for i in 0..extra {
        w.facts_mut()
            .tags
            .insert(format!("owner-{i:02}"), "x".into());
    }
    for day in 8..120 {
        let d = w.run(days(day));
        if d.step() == Some(Step::Delete) {
            return (w, d);
        }
    }
    panic!("no delete within 120 days: {:?}", w.record);
}

#[test]
fn an_unmarked_identity_gets_its_stage_tag_after_the_snapshot_and_before_the_teardown() {
    let (_, d) = delete_of_an_unmarked_role(0);
    assert!(d.blocked().is_none(), "{:?}", d.blocked());
    let effects = d.effects();
    let snapshot = effects.iter().position(|e| *e == Effect::TakeSnapshot);
    let tag = effects.iter().position(|e| {
        matches!(e, Effect::PutTags { tags } if tags.iter().any(|(k, v)| k == "dormant:stage" && v == "quarantined"))
    });
    let delete = effects.iter().position(|e| *e == Effect::DeletePrincipal);
    assert!(
        snapshot < tag && tag < delete && snapshot.is_some(),
        "{effects:?}"
    );
    assert!(
        d.reason.contains("dormant:stage was missing"),
        "the audit trail says why it tagged first: {}",
        d.reason
    );
}

#[test]
fn an_unmarked_identity_without_room_for_the_tag_is_not_torn_down_and_says_why() {
    let (w, d) = delete_of_an_unmarked_role(50);
    let why = d.blocked().expect("blocked");
    assert!(
        why.contains("carries no dormant:stage")
            && why.contains("50 of 50")
            && why.contains("remove one tag"),
        "{why}"
    );
    assert!(!d.effects().contains(&Effect::DeletePrincipal), "{d:?}");
    assert_eq!(w.record.stage, Stage::Quarantined, "nothing committed");
}

#[test]
fn a_stage_tag_in_another_case_counts() {
    let mut w = World::whole(role("old-etl").created(days(400)).build());
    w.run(days(0));
    w.run(days(7));
    let value = w.facts_mut().tags.remove("dormant:stage").expect("tagged");
    w.facts_mut().tags.insert("Dormant:Stage".into(), value);
    for day in 8..120 {
        let d = w.run(days(day));
        if d.step() == Some(Step::Delete) {
            assert!(
                !d.effects()
                    .iter()
                    .any(|e| matches!(e, Effect::PutTags { .. })),
                "{:?}",
                d.effects()
            );
            return;
        }
    }
    panic!("no delete");
}
