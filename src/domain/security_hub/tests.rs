//! The ASFF shape of dormant's findings and the workflow rules.

use super::*;
use crate::domain::subject::Principal;
use chrono::TimeZone;
use serde_json::Value;

const ACCOUNT: &str = "111122223333";

fn at(day: u32) -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, day, 12, 0, 0)
        .unwrap()
}

fn subjects(partition: &str) -> Vec<Subject> {
    let user = Principal::user(ACCOUNT, "/ops/", "alice").in_partition(partition);
    vec![
        Subject::whole(Principal::role(ACCOUNT, "/", "deploy").in_partition(partition)),
        Subject::whole(user.clone()),
        Subject::access_key(user.clone(), "AKIAIOSFODNN7EXAMPLE"),
        Subject::password(user),
    ]
}

fn record(subject: &Subject, stage: Stage) -> Record {
    let mut r = Record::new(subject.clone());
    r.stage = stage;
    r.noticed_at = Some(at(1));
    r.stage_since = Some(at(8));
    r.last_used_at = Some(at(1) - chrono::Duration::days(120));
    r.reason = "idle 120 days".into();
    if stage.is_on_ladder() {
        r.next_step = Some(Step::Delete);
        r.next_due_at = Some(at(24));
    }
    r
}

const TARGET: HubTarget<'static> = HubTarget {
    partition: "aws",
    region: "eu-west-1",
};

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing or not a string in {v}"))
}

/// The fields ASFF requires of every finding `BatchImportFindings` takes, with the limits
/// and formats the ASFF syntax reference gives them; written out here, apart from the code
/// that builds the finding.
fn assert_asff(v: &Value) {
    for field in [
        "SchemaVersion",
        "Id",
        "ProductArn",
        "GeneratorId",
        "AwsAccountId",
        "CreatedAt",
        "UpdatedAt",
        "Title",
        "Description",
    ] {
        assert!(!text(v, field).is_empty(), "{field} empty");
    }
    assert_eq!(text(v, "SchemaVersion"), "2018-10-08");
    assert!(text(v, "Id").len() <= 512);
    assert!(text(v, "GeneratorId").len() <= 512);
    assert!(text(v, "Title").len() <= 256);
    assert!(text(v, "Description").len() <= 1024);
    let account = text(v, "AwsAccountId");
    assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    for field in [
        "CreatedAt",
        "UpdatedAt",
        "FirstObservedAt",
        "LastObservedAt",
    ] {
        let t = text(v, field);
        assert!(t.ends_with('Z'), "{field} {t} is not UTC");
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("{field} {t} is not RFC 3339: {e}"));
    }
    let types = v["Types"].as_array().expect("Types is an array");
    assert!(!types.is_empty() && types.len() <= 50);
    for t in types {
        let parts: Vec<&str> = t.as_str().unwrap().split('/').collect();
        assert!((1..=3).contains(&parts.len()), "{t}");
        assert!([
            "Software and Configuration Checks",
            "TTPs",
            "Effects",
            "Unusual Behaviors",
            "Sensitive Data Identifications"
        ]
        .contains(&parts[0]));
    }
    let label = text(&v["Severity"], "Label");
    assert!(["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&label));
    let resources = v["Resources"].as_array().expect("Resources is an array");
    assert!(!resources.is_empty() && resources.len() <= 32);
    for r in resources {
        assert!(!text(r, "Type").is_empty() && !text(r, "Id").is_empty());
    }
    assert!(["ACTIVE", "ARCHIVED"].contains(&text(v, "RecordState")));
    assert!(["NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"].contains(&text(&v["Workflow"], "Status")));
    assert!(text(&v["Remediation"]["Recommendation"], "Text").len() <= 512);
}

#[test]
fn every_subject_at_every_stage_is_a_valid_asff_finding_of_its_own_account() {
    for partition in ["aws", "aws-cn"] {
        let region = if partition == "aws" {
            "eu-west-1"
        } else {
            "cn-north-1"
        };
        let target = HubTarget { partition, region };
        for subject in subjects(partition) {
            for stage in Stage::ALL {
                let r = record(&subject, stage);
                let report = report(
                    Stage::Noticed,
                    &r,
                    Some(Step::Quarantine),
                    "why",
                    target,
                    at(9),
                );
                let v = serde_json::to_value(&report.finding).unwrap();
                assert_asff(&v);
                assert_eq!(
                    v["ProductArn"],
                    format!(
                        "arn:{partition}:securityhub:{region}:{ACCOUNT}:product/{ACCOUNT}/default"
                    )
                );
                assert_eq!(v["AwsAccountId"], ACCOUNT);
                assert_eq!(v["Region"], region);
                let identity = v["Resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["Type"] == "AwsIamRole" || r["Type"] == "AwsIamUser")
                    .unwrap();
                assert_eq!(identity["Id"], subject.principal.arn());
                assert!(identity["Id"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("arn:{partition}:iam::{ACCOUNT}:")));
                assert_eq!(identity["Partition"], partition);
            }
        }
    }
}

#[test]
fn an_access_key_is_its_own_resource_with_its_user() {
    let key = &subjects("aws")[2];
    let f = report(
        Stage::Clean,
        &record(key, Stage::Noticed),
        Some(Step::Notice),
        "idle",
        TARGET,
        at(1),
    )
    .finding;
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["Resources"][0]["Type"], "AwsIamAccessKey");
    assert_eq!(
        v["Resources"][0]["Id"],
        "AWS::IAM::AccessKey:AKIAIOSFODNN7EXAMPLE"
    );
    assert_eq!(
        v["Resources"][0]["Details"]["AccessKeyId"],
        "AKIAIOSFODNN7EXAMPLE"
    );
    assert_eq!(v["Resources"][0]["Details"]["PrincipalName"], "alice");
    assert_eq!(
        v["Resources"][1]["Id"],
        "arn:aws:iam::111122223333:user/ops/alice"
    );
    assert_eq!(f.generator_id, "dormant/access_key");
}

#[test]
fn the_finding_id_is_fixed_per_subject_so_imports_replace_it() {
    let all = subjects("aws");
    let ids: Vec<String> = all.iter().map(finding_id).collect();
    assert_eq!(ids[0], "dormant/arn:aws:iam::111122223333:role/deploy");
    assert_eq!(
        ids[2],
        "dormant/arn:aws:iam::111122223333:user/ops/alice/key/AKIAIOSFODNN7EXAMPLE"
    );
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "one finding per credential");
    // The same subject in another partition keeps its id, like its state key.
    assert_eq!(finding_id(&subjects("aws-cn")[0]), ids[0]);
    let a = report(
        Stage::Clean,
        &record(&all[0], Stage::Noticed),
        Some(Step::Notice),
        "",
        TARGET,
        at(1),
    );
    let b = report(
        Stage::Noticed,
        &record(&all[0], Stage::Quarantined),
        Some(Step::Quarantine),
        "",
        TARGET,
        at(8),
    );
    assert_eq!(a.finding.id, b.finding.id);
}

#[test]
fn severity_rises_with_the_stage_and_the_finding_is_archived_off_the_ladder() {
    let rank = |l: SeverityLabel| l as u8;
    let ladder = [Stage::Noticed, Stage::Quarantined, Stage::KeysDeactivated];
    for w in ladder.windows(2) {
        assert!(rank(severity(w[0])) < rank(severity(w[1])), "{w:?}");
    }
    assert_eq!(severity(Stage::PendingDelete), SeverityLabel::High);
    for stage in Stage::ALL {
        let f = report(
            Stage::Noticed,
            &record(&subjects("aws")[0], stage),
            None,
            "",
            TARGET,
            at(9),
        )
        .finding;
        assert_eq!(f.severity, f.finding_provider_fields.severity);
        assert_eq!(f.severity.original, stage.as_str());
        if stage.is_on_ladder() {
            assert_eq!(f.record_state, RecordState::Active);
            assert_ne!(f.workflow.status, WorkflowStatus::Resolved);
        } else {
            assert_eq!(f.record_state, RecordState::Archived, "{stage}");
            assert_eq!(f.workflow.status, WorkflowStatus::Resolved);
            assert_eq!(f.severity.label, SeverityLabel::Informational);
        }
    }
}

#[test]
fn the_description_gives_the_evidence_and_the_next_step() {
    let r = record(&subjects("aws")[0], Stage::Quarantined);
    let f = report(
        Stage::Noticed,
        &r,
        Some(Step::Quarantine),
        "idle since 2025-11-01",
        TARGET,
        at(8),
    )
    .finding;
    assert_eq!(
        f.title,
        "Unused IAM role deploy: quarantined (deny-all policy attached)"
    );
    for part in [
        "arn:aws:iam::111122223333:role/deploy",
        "last used 2025-11-01T12:00:00Z",
        "Stage quarantined since 2026-03-08T12:00:00Z",
        "after the quarantine step: idle since 2025-11-01.",
        "Next: delete at 2026-03-24T12:00:00Z.",
    ] {
        assert!(
            f.description.contains(part),
            "{part} not in {}",
            f.description
        );
    }
    assert!(f
        .remediation
        .recommendation
        .text
        .contains("dormant undo role/deploy"));
    assert_eq!(f.product_fields["dormant/Stage"], "quarantined");
    assert_eq!(f.product_fields["dormant/NextStep"], "delete");
    assert_eq!(f.created_at, "2026-03-01T12:00:00.000Z");
    assert_eq!(f.updated_at, "2026-03-08T12:00:00.000Z");
    let long = "x".repeat(3000);
    let f = report(Stage::Noticed, &r, None, &long, TARGET, at(8)).finding;
    assert_eq!(f.description.len(), 1024);
    assert!(f.description.ends_with("..."));
}

#[test]
fn workflow_updates_follow_the_ladder() {
    let role = &subjects("aws")[0];
    let nominating = HubFindingRef {
        id: "arn:aws:securityhub:us-east-1:111122223333:subscription/aws-foundational-security-best-practices/v/1.0.0/IAM.8/finding/1".into(),
        product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
    };
    assert_eq!(nominating.region(), Some("us-east-1"));
    let statuses = |before: Stage, stage: Stage, with: bool| {
        let mut r = record(role, stage);
        if with {
            r.hub_findings.push(nominating.clone());
        }
        report(before, &r, None, "", TARGET, at(9))
            .updates
            .into_iter()
            .map(|u| (u.finding.id == nominating.id, u.status))
            .collect::<Vec<_>>()
    };
    use WorkflowStatus::*;
    // A new finding carries its status; the finding that nominated is NOTIFIED at notice.
    assert_eq!(statuses(Stage::Clean, Stage::Noticed, false), vec![]);
    assert_eq!(
        statuses(Stage::Clean, Stage::Noticed, true),
        vec![(true, Notified)]
    );
    // Access cut: dormant's own finding moves NEW -> NOTIFIED (an import cannot change it).
    assert_eq!(
        statuses(Stage::Noticed, Stage::Quarantined, false),
        vec![(false, Notified)]
    );
    assert_eq!(
        statuses(Stage::Quarantined, Stage::KeysDeactivated, false),
        vec![]
    );
    // Deleted or released: both RESOLVED.
    assert_eq!(
        statuses(Stage::KeysDeactivated, Stage::Deleted, true),
        vec![(false, Resolved), (true, Resolved)]
    );
    assert_eq!(
        statuses(Stage::Noticed, Stage::Released, true),
        vec![(false, Resolved), (true, Resolved)]
    );
    let mut r = record(role, Stage::Released);
    r.hub_findings.push(nominating.clone());
    let u = &report(
        Stage::Quarantined,
        &r,
        Some(Step::Release),
        "",
        TARGET,
        at(9),
    )
    .updates[1];
    assert_eq!(
        u.note,
        "dormant: role/deploy released (in use again, or undone)"
    );
}

#[test]
fn a_record_remembers_the_latest_nominating_findings_once_each() {
    let mut r = record(&subjects("aws")[0], Stage::Noticed);
    let f = |i: usize| HubFindingRef {
        id: format!("f{i}"),
        product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
    };
    for i in 0..15 {
        remember_nominating(&mut r, &f(i));
        remember_nominating(&mut r, &f(i));
    }
    assert_eq!(r.hub_findings.len(), MAX_NOMINATING_FINDINGS);
    assert_eq!(r.hub_findings[0], f(5));
    assert_eq!(r.hub_findings[9], f(14));
}

#[test]
fn clipping_keeps_whole_characters() {
    let s = "é".repeat(600);
    let c = clip(&s, 256);
    assert!(c.len() <= 256 && c.ends_with("..."));
    assert_eq!(clip("short", 256), "short");
}
