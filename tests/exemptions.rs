//! Exemptions in the decision core: an exemption tag dormant cannot read in full still keeps the
//! identity (for at most `exemptions.max_days`), dormant's tag keys are read whatever their case,
//! and the always-protected roles are never changed by any path.

use dormant::config::Config;
use dormant::domain::tag::{TAG_EXEMPT, TAG_EXEMPT_UNTIL};
use dormant::domain::{approve, undo, Effect, Intent, Stage, Step};

use crate::support::core_sim::*;

fn tagged(name: &str, tags: &[(&str, &str)]) -> World {
    let mut b = role(name).created(days(500));
    for (k, v) in tags {
        b = b.tag(k, v);
    }
    World::whole(b.build())
}

#[test]
fn an_unreadable_exempt_until_keeps_the_exemption_and_says_the_date_is_unreadable() {
    let mut w = tagged(
        "typo",
        &[(TAG_EXEMPT, "true"), (TAG_EXEMPT_UNTIL, "next tuesday")],
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), None, "{}", d.reason);
    assert!(w.applied.is_empty());
    assert!(
        d.reason.contains("'next tuesday' is not a date"),
        "{}",
        d.reason
    );
    let warning = d.exemption.as_ref().and_then(|e| e.warning());
    assert!(
        warning.is_some_and(|w| w.contains("is not a date")),
        "the engine gets a warning to log: {:?}",
        d.exemption
    );
    // Remembered, so the `max_days` cap counts from the first sight.
    assert_eq!(w.record.stage, Stage::Exempt);
    assert_eq!(
        w.record.open_exemption.as_ref().map(|o| o.since),
        Some(t0())
    );
    assert_eq!(w.run(days(200)).step(), None);
}

#[test]
fn an_exemption_without_a_usable_date_ends_max_days_after_dormant_first_saw_it() {
    let mut w = tagged(
        "forever",
        &[(TAG_EXEMPT, "true"), (TAG_EXEMPT_UNTIL, "2099-12-31")],
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), None, "a far date still exempts");
    assert!(
        d.reason.contains("more than 365 days") && d.reason.contains("2027-06-01"),
        "the reason names the cap: {}",
        d.reason
    );
    assert_eq!(w.run(days(364)).step(), None);
    let d = w.run(days(365));
    assert_eq!(d.step(), Some(Step::Notice), "{}", d.reason);
    assert!(d.reason.contains("exemptions.max_days"), "{}", d.reason);
    // The cap is remembered across the ladder: no release and fresh year on the next run.
    assert_eq!(w.run(days(366)).step(), None);
    assert_eq!(w.run(days(372)).step(), Some(Step::Quarantine));
    // A new end date written by the owner is a new exemption (a renewal).
    w.facts_mut()
        .tags
        .insert(TAG_EXEMPT_UNTIL.into(), "2098-01-01".into());
    let d = w.run(days(373));
    assert_eq!(d.step(), Some(Step::Release), "{}", d.reason);
    assert_eq!(w.record.stage, Stage::Exempt);
    assert!(!w.facts().has_quarantine_policy);
}

#[test]
fn require_until_without_a_date_exempts_for_max_days_with_a_warning() {
    let mut w = tagged("no-date", &[(TAG_EXEMPT, "true")]);
    w.policy.exemptions.require_until = true;
    let d = w.run(days(0));
    assert_eq!(d.step(), None, "{}", d.reason);
    assert!(
        d.reason.contains("exemptions.require_until"),
        "{}",
        d.reason
    );
    assert_eq!(w.run(days(364)).step(), None);
    assert_eq!(w.run(days(365)).step(), Some(Step::Notice));

    // Without require_until, no date means no end.
    let mut w = tagged("no-date-ok", &[(TAG_EXEMPT, "true")]);
    assert_eq!(w.run(days(0)).step(), None);
    assert_eq!(w.run(days(2000)).step(), None);
    assert_eq!(w.record.version, 0, "nothing to remember");
}

#[test]
fn a_readable_date_within_max_days_is_honoured_and_a_past_one_lapses() {
    let mut w = tagged(
        "in-range",
        &[(TAG_EXEMPT, "true"), (TAG_EXEMPT_UNTIL, "2026-12-31")],
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), None);
    assert_eq!(d.exemption.as_ref().and_then(|e| e.warning()), None);
    assert_eq!(w.record.version, 0, "nothing to remember");
    assert_eq!(w.run(days(213)).step(), None, "through the whole day named");
    assert_eq!(w.run(days(214)).step(), Some(Step::Notice));

    let mut w = tagged(
        "past",
        &[(TAG_EXEMPT, "true"), (TAG_EXEMPT_UNTIL, "2026-05-31")],
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice));
    assert!(d.reason.contains("lapsed"), "{}", d.reason);
}

#[test]
fn exemption_keys_count_only_in_the_spelling_the_scp_guards_and_false_in_any_case() {
    // The sample SCP keeps `dormant:*` to security admins, case-sensitively: an owner's own
    // `DORMANT:EXEMPT` must not exempt (or release) anything.
    let mut w = tagged(
        "self-exempted",
        &[
            ("DORMANT:EXEMPT", "true"),
            ("DORMANT:EXEMPT-REASON", "my role"),
        ],
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice), "{}", d.reason);
    assert!(
        d.reason
            .contains("'DORMANT:EXEMPT' is not 'dormant:exempt'"),
        "{}",
        d.reason
    );

    for no in ["false", "False", "FALSE", " false "] {
        let mut w = tagged("not-exempt", &[("dormant:exempt", no)]);
        assert_eq!(w.run(days(0)).step(), Some(Step::Notice), "{no:?}");
    }

    let mut w = tagged(
        "mixed",
        &[
            ("dormant:exempt", "yes"),
            ("dormant:exempt-until", "2026-05-31"),
        ],
    );
    let d = w.run(days(0));
    assert_eq!(d.step(), Some(Step::Notice), "the lapsed date is read too");
    assert!(d.reason.contains("lapsed"), "{}", d.reason);
}

#[test]
fn stage_tags_written_in_another_case_are_removed_by_their_stored_key() {
    let mut w = tagged("recased", &[]);
    w.run(days(0));
    w.run(days(7));
    // Someone rewrote the stage tag through the console with a different case.
    let v = w.facts_mut().tags.remove("dormant:stage").unwrap();
    w.facts_mut().tags.insert("Dormant:Stage".into(), v);
    w.facts_mut().tags.insert(TAG_EXEMPT.into(), "true".into());
    let d = w.run(days(8));
    assert_eq!(d.step(), Some(Step::Release));
    let removed: Vec<String> = d
        .effects()
        .iter()
        .flat_map(|e| match e {
            Effect::RemoveTags { keys } => keys.clone(),
            _ => vec![],
        })
        .collect();
    assert!(
        removed.contains(&"Dormant:Stage".to_string()),
        "{removed:?}"
    );
    assert!(!w
        .facts()
        .tags
        .keys()
        .any(|k| k.eq_ignore_ascii_case("dormant:stage")));
}

/// Every entry of the always-protected table, and names next to them that are not protected.
#[test]
fn each_always_protected_role_is_never_touched_and_near_misses_are_not_protected() {
    let protected = [
        (
            "/aws-service-role/support.amazonaws.com/",
            "AWSServiceRoleForSupport",
        ),
        (
            "/aws-reserved/sso.amazonaws.com/eu-west-1/",
            "AWSReservedSSO_Admin_0123",
        ),
        ("/", "OrganizationAccountAccessRole"),
        ("/", "organizationaccountaccessrole"),
        ("/", "AWSControlTowerExecution"),
        ("/service-role/", "AWSControlTowerAdmin"),
        ("/", "aws-controltower-AdministratorExecutionRole"),
        ("/", "stacksets-exec-0123456789abcdef0123456789abcdef"),
        ("/", "AWSCloudFormationStackSetExecutionRole"),
        ("/", "AWSCloudFormationStackSetAdministrationRole"),
        ("/", "cdk-hnb659fds-deploy-role-111122223333-us-east-1"),
        ("/", "cdk-hnb659fds-cfn-exec-role-111122223333-eu-west-1"),
        (
            "/",
            "cdk-custom01-file-publishing-role-111122223333-us-east-1",
        ),
        ("/", "cdk-hnb659fds-lookup-role-111122223333-us-east-1"),
        ("/", "dormant-controller"),
        ("/", "dormant-member"),
        ("/", "dormant-automation"),
    ];
    for (path, name) in protected {
        let mut w = World::whole(role_at(path, name).created(days(900)).build());
        for day in [0, 7, 23, 60, 400] {
            let d = w.run(days(day));
            assert!(d.step().is_none(), "{path}{name} day {day}: {}", d.reason);
            assert!(d.reason.starts_with("protected: "), "{name}: {}", d.reason);
        }
        assert!(w.applied.is_empty(), "{name}");
    }
    let ordinary = [
        ("/", "cdk-deploy"),
        ("/", "my-cdk-role"),
        ("/", "stacksets-executor"),
        ("/", "AWSCloudFormationStackSetExecutionRoleCopy"),
        ("/", "OrganizationAccountAccessRole2"),
        ("/", "dormant-controller-old"),
        ("/service-role/", "aws-service-role-lookalike"),
        // Identity Center's roles live under /aws-reserved/; the name alone anyone can take.
        ("/", "AWSReservedSSO_ReadOnly_abcd"),
    ];
    for (path, name) in ordinary {
        let mut w = World::whole(role_at(path, name).created(days(900)).build());
        assert_eq!(w.run(days(0)).step(), Some(Step::Notice), "{path}{name}");
    }
}

#[test]
fn the_roles_the_configuration_names_are_protected_by_name_in_every_account() {
    let config = Config::from_toml(
        r#"
accounts = [{ id = "444455556666", role = "arn:aws:iam::444455556666:role/ops/dormant-reader" }]
[organization]
enabled = true
role_name = "org-dormant"
[fallback]
automation_role = "arn:aws:iam::999988887777:role/remediation/ssm-automation"
"#,
    )
    .unwrap();
    for name in [
        "ssm-automation",
        "SSM-Automation",
        "dormant-reader",
        "org-dormant",
    ] {
        // Another account and another path than the ARN's: the name is what SSM and
        // AssumeRole use in each account dormant works in.
        let mut w = World::whole(role_at("/elsewhere/", name).created(days(900)).build());
        w.policy = config.policy.clone();
        let d = w.run(days(30));
        assert_eq!(d.step(), None, "{name}: {}", d.reason);
        assert_eq!(d.reason, "protected: dormant's own identity", "{name}");
    }
    let mut w = World::whole(role("ssm-automation-2").created(days(900)).build());
    w.policy = config.policy.clone();
    assert_eq!(w.run(days(30)).step(), Some(Step::Notice));
}

#[test]
fn a_protected_role_with_a_step_left_pending_is_not_finished() {
    let mut w = World::whole(
        role("cdk-hnb659fds-deploy-role-111122223333-us-east-1")
            .created(days(900))
            .build(),
    );
    // A record from a version of dormant that did not protect the role: a quarantine was
    // written and the run died before IAM was changed.
    let mut after = w.record.entering(Stage::Quarantined, t0(), "old".into());
    after.version = 2;
    w.record.stage = Stage::Noticed;
    w.record.stage_since = Some(t0() - days(8));
    w.record.version = 2;
    w.record.pending = Some(Intent::new(
        Step::Quarantine,
        t0() - days(1),
        vec![Effect::PutQuarantinePolicy],
        after,
    ));
    let d = w.run(days(0));
    assert!(d.effects().is_empty(), "{d:?}");
    assert!(w.applied.is_empty());
    assert_eq!(w.record.stage, Stage::Exempt);
    assert!(w.record.pending.is_none(), "the stale intent is dropped");
}

#[test]
fn undo_and_approve_refuse_a_protected_role() {
    let mut w = World::whole(role("AWSControlTowerExecution").created(days(900)).build());
    w.record.stage = Stage::PendingDelete;
    w.record.stage_since = Some(t0() - days(30));
    w.record.version = 4;
    let refused = undo(&w.record, w.facts.as_ref(), &w.policy, t0(), "x").unwrap_err();
    assert!(refused.to_string().contains("protected"), "{refused}");
    let refused = approve(&w.record, &w.policy, "ops", t0()).unwrap_err();
    assert!(refused.to_string().contains("protected"), "{refused}");
    assert!(w.record.approval.is_none());
}

#[test]
fn a_protected_role_left_quarantined_by_an_older_version_is_untouched_and_says_what_stays() {
    let mut w = World::whole(
        role("cdk-hnb659fds-deploy-role-111122223333-us-east-1")
            .created(days(900))
            .build(),
    );
    // Quarantined before the CDK bootstrap roles were protected.
    w.record.stage = Stage::Quarantined;
    w.record.stage_since = Some(t0() - days(3));
    w.record.version = 3;
    w.facts_mut().has_quarantine_policy = true;
    let d = w.run(days(0));
    assert!(d.effects().is_empty(), "{d:?}");
    assert!(w.applied.is_empty());
    assert_eq!(w.record.stage, Stage::Exempt);
    assert!(
        w.record.reason.contains("dormant's quarantine policy")
            && w.record.reason.contains("by hand"),
        "{}",
        w.record.reason
    );
    let again = w.run(days(1));
    assert!(
        matches!(again.action, dormant::domain::Action::Wait),
        "settled: {again:?}"
    );
}
