//! Every fixture in `tests/fixtures/events/` (real AWS event shapes; sources in its README) goes
//! through the classifier with its expected outcome, nominee, account, finding and reason. Edge
//! rules are checked on mutated copies of the same fixtures.

use std::collections::BTreeSet;

use dormant::domain::finding::{Classification, Nominee, Source};
use dormant::domain::{PrincipalKind, Scope};
use dormant::inbound::eventbridge::{
    classification_json, classify, classify_all, classify_bytes, ClassifyRules,
};
use serde_json::{json, Value};

use crate::support::events::{fixture, fixture_bytes, fixture_dir, rules};

fn principal(
    account: &str,
    kind: PrincipalKind,
    path: Option<&str>,
    name: &str,
    scope: Scope,
) -> Nominee {
    Nominee::Principal {
        account: account.into(),
        kind,
        path: path.map(Into::into),
        name: name.into(),
        scope,
    }
}

fn role(account: &str, path: Option<&str>, name: &str) -> Nominee {
    principal(account, PrincipalKind::Role, path, name, Scope::Whole)
}

fn user(account: &str, path: Option<&str>, name: &str) -> Nominee {
    principal(account, PrincipalKind::User, path, name, Scope::Whole)
}

struct Expect {
    file: &'static str,
    outcome: &'static str,
    source: Option<Source>,
    nominee: Option<Nominee>,
    finding: Option<&'static str>,
    reason: &'static str,
}

fn candidate(
    file: &'static str,
    source: Source,
    nominee: Nominee,
    finding: &'static str,
    reason: &'static str,
) -> Expect {
    Expect {
        file,
        outcome: "candidate",
        source: Some(source),
        nominee: Some(nominee),
        finding: Some(finding),
        reason,
    }
}

fn ignored(file: &'static str, source: Option<Source>, reason: &'static str) -> Expect {
    Expect {
        file,
        outcome: "ignored",
        source,
        nominee: None,
        finding: None,
        reason,
    }
}

fn invalid(file: &'static str, source: Option<Source>, reason: &'static str) -> Expect {
    Expect {
        file,
        outcome: "invalid",
        source,
        nominee: None,
        finding: None,
        reason,
    }
}

fn expectations() -> Vec<Expect> {
    use Source::*;
    vec![
        // AWS Config
        candidate(
            "config-user-noncompliant-aida.json",
            Config,
            Nominee::UniqueId {
                account: "123456789012".into(),
                kind: PrincipalKind::User,
                unique_id: "AIDACKCEVSQ6C2EXAMPLE".into(),
            },
            "iam-user-unused-credentials-check",
            "found user AIDACKCEVSQ6C2EXAMPLE NON_COMPLIANT",
        ),
        candidate(
            "config-role-noncompliant-aroa.json",
            Config,
            Nominee::UniqueId {
                account: "111122223333".into(),
                kind: PrincipalKind::Role,
                unique_id: "AROA3XFRBF535PLBIFPI4".into(),
            },
            "iam-role-last-used",
            "Role has not been used in the last 90 days.",
        ),
        candidate(
            "config-role-by-name.json",
            Config,
            role("111122223333", None, "legacy-batch-role"),
            "iam-role-last-used",
            "found role legacy-batch-role NON_COMPLIANT",
        ),
        ignored(
            "config-user-compliant.json",
            Some(Config),
            "only NON_COMPLIANT nominates",
        ),
        ignored(
            "config-rule-not-configured.json",
            Some(Config),
            "\"access-keys-rotated\" is not one of the configured inactivity rules",
        ),
        // IAM Access Analyzer
        candidate(
            "access-analyzer-unused-role.json",
            AccessAnalyzer,
            role("111122223333", Some("/"), "FindingIntegTestFakeRole"),
            "UnusedIAMRole",
            "reports UnusedIAMRole for arn:aws:iam::111122223333:role/FindingIntegTestFakeRole",
        ),
        candidate(
            "access-analyzer-unused-access-key.json",
            AccessAnalyzer,
            Nominee::AccessKeyOf {
                account: "111122223333".into(),
                path: Some("/".into()),
                user: "ci-deployer".into(),
            },
            "UnusedIAMUserAccessKey",
            "UnusedIAMUserAccessKey for arn:aws:iam::111122223333:user/ci-deployer",
        ),
        candidate(
            "access-analyzer-unused-password.json",
            AccessAnalyzer,
            principal(
                "111122223333",
                PrincipalKind::User,
                Some("/engineering/"),
                "alice",
                Scope::Password,
            ),
            "UnusedIAMUserPassword",
            "UnusedIAMUserPassword for arn:aws:iam::111122223333:user/engineering/alice",
        ),
        ignored(
            "access-analyzer-unused-permission.json",
            Some(AccessAnalyzer),
            "UnusedPermission findings are out of scope",
        ),
        ignored(
            "access-analyzer-error.json",
            Some(AccessAnalyzer),
            "INTERNAL_ERROR",
        ),
        ignored(
            "access-analyzer-archived.json",
            Some(AccessAnalyzer),
            "\"ARCHIVED\": only ACTIVE nominates",
        ),
        ignored(
            "access-analyzer-resolved.json",
            Some(AccessAnalyzer),
            "\"RESOLVED\": only ACTIVE nominates",
        ),
        ignored(
            "access-analyzer-external-access.json",
            Some(AccessAnalyzer),
            "\"Access Analyzer Finding\" are not an input dormant handles",
        ),
        // Security Hub (ASFF)
        candidate(
            "securityhub-iam8-user.json",
            SecurityHub,
            user("111122223333", Some("/"), "sharrtest"),
            "IAM.8",
            "Security Hub IAM.8 FAILED for arn:aws:iam::111122223333:user/sharrtest",
        ),
        candidate(
            "securityhub-iam22-access-key.json",
            SecurityHub,
            principal(
                "123456789012",
                PrincipalKind::User,
                None,
                "ci-deployer",
                Scope::AccessKey("AKIAIOSFODNN7EXAMPLE".into()),
            ),
            "IAM.22",
            "IAM.22 FAILED for user/ci-deployer/key/AKIAIOSFODNN7EXAMPLE",
        ),
        candidate(
            "securityhub-iam22-user-member-account.json",
            SecurityHub,
            user("123456789012", Some("/analytics/"), "report-writer"),
            "IAM.22",
            "arn:aws:iam::123456789012:user/analytics/report-writer",
        ),
        candidate(
            "securityhub-cis-1.3-user.json",
            SecurityHub,
            user("111122223333", Some("/"), "foobarbaz"),
            "CIS 1.3",
            "Security Hub CIS 1.3 FAILED",
        ),
        candidate(
            "securityhub-cis-1.12-user.json",
            SecurityHub,
            user("111122223333", Some("/"), "old-contractor"),
            "CIS 1.12",
            "Security Hub CIS 1.12 FAILED",
        ),
        ignored(
            "securityhub-cis-1.2.0-1.12-root-key.json",
            Some(SecurityHub),
            "control \"IAM.4\" is not an unused-credentials control",
        ),
        ignored(
            "securityhub-iam8-suppressed.json",
            Some(SecurityHub),
            "SUPPRESSED",
        ),
        ignored(
            "securityhub-iam8-archived.json",
            Some(SecurityHub),
            "RecordState ARCHIVED",
        ),
        ignored(
            "securityhub-iam8-awsaccount.json",
            Some(SecurityHub),
            "resource type \"AwsAccount\" is not an IAM user, role or access key",
        ),
        candidate(
            "securityhub-multiple-findings.json",
            SecurityHub,
            user("111122223333", Some("/"), "sharrtest"),
            "IAM.8",
            "(finding 2 of 2 in the event)",
        ),
        // Security Hub V2 (OCSF)
        candidate(
            "securityhub-v2-iam8-user.json",
            SecurityHub,
            user("123456789012", Some("/"), "svc-legacy-etl"),
            "IAM.8",
            "Security Hub IAM.8 failed for arn:aws:iam::123456789012:user/svc-legacy-etl",
        ),
        // CloudTrail
        candidate(
            "cloudtrail-tagrole-dormant-exempt.json",
            CloudTrail,
            role("123456789012", None, "nightly-report-role"),
            "TagRole",
            "\"dormant:exempt\"",
        ),
        candidate(
            "cloudtrail-untaguser-dormant.json",
            CloudTrail,
            user("111122223333", None, "ci-deployer"),
            "UntagUser",
            "UntagUser changed \"dormant:exempt\" on user/ci-deployer",
        ),
        ignored(
            "cloudtrail-tagrole-other-tag.json",
            Some(CloudTrail),
            "not a dormant:* tag",
        ),
        ignored(
            "cloudtrail-tagrole-access-denied.json",
            Some(CloudTrail),
            "the TagRole call failed (\"AccessDenied\")",
        ),
        // Schedule
        candidate(
            "schedule-sweep.json",
            Schedule,
            Nominee::Sweep,
            "sweep",
            "scheduled sweep",
        ),
        candidate(
            "schedule-tick.json",
            Schedule,
            Nominee::Tick,
            "tick",
            "scheduled tick",
        ),
        invalid(
            "schedule-native-empty-detail.json",
            Some(Schedule),
            "needs detail.action",
        ),
        // Malformed
        invalid(
            "malformed-no-detail-type.json",
            None,
            "\"detail-type\" is missing",
        ),
        invalid("malformed-truncated.json", None, "not a JSON event"),
    ]
}

#[test]
fn every_fixture_classifies_as_expected() {
    let rules = rules();
    for x in expectations() {
        let c = classify_bytes(&fixture_bytes(x.file), &rules);
        let ctx = format!("{}: {c:?}", x.file);
        assert_eq!(c.outcome(), x.outcome, "{ctx}");
        assert_eq!(c.source(), x.source, "{ctx}");
        assert!(
            c.reason().contains(x.reason),
            "{ctx}\nexpected the reason to contain {:?}",
            x.reason
        );
        assert_eq!(
            c.candidate().map(|f| &f.nominee),
            x.nominee.as_ref(),
            "{ctx}"
        );
        assert_eq!(
            c.candidate().map(|f| f.finding.as_str()),
            x.finding,
            "{ctx}"
        );
        if x.file != "malformed-truncated.json" {
            let id = fixture(x.file)["id"].as_str().map(str::to_string);
            assert_eq!(c.event_id().map(str::to_string), id, "{ctx}");
        }
    }
}

#[test]
fn every_fixture_has_an_expectation_and_a_readme_line() {
    let listed: BTreeSet<_> = expectations().iter().map(|x| x.file.to_string()).collect();
    let on_disk: BTreeSet<_> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(listed, on_disk);
    let readme = std::fs::read_to_string(fixture_dir().join("README.md")).unwrap();
    for f in &on_disk {
        assert!(
            readme.contains(&format!("`{f}`")),
            "README.md does not list {f}"
        );
    }
}

#[test]
fn bytes_and_values_agree() {
    let rules = rules();
    for x in expectations()
        .iter()
        .filter(|x| x.file != "malformed-truncated.json")
    {
        assert_eq!(
            classify(&fixture(x.file), &rules),
            classify_bytes(&fixture_bytes(x.file), &rules),
            "{}",
            x.file
        );
    }
}

#[test]
fn the_resource_arns_account_wins_over_the_envelopes() {
    let rules = rules();
    // Access Analyzer (AWS's own sample): the organisation analyzer's account sends the event.
    let e = fixture("access-analyzer-unused-role.json");
    assert_eq!(e["account"], "123456789012");
    let c = classify(&e, &rules);
    assert_eq!(
        c.candidate().unwrap().nominee.account(),
        Some("111122223333")
    );

    // Security Hub: a delegated administrator receives a member account's finding.
    let e = fixture("securityhub-iam22-user-member-account.json");
    assert_eq!(e["account"], "111122223333");
    assert_eq!(e["detail"]["findings"][0]["AwsAccountId"], "111122223333");
    let c = classify(&e, &rules);
    assert_eq!(
        c.candidate().unwrap().nominee.account(),
        Some("123456789012")
    );

    // An access key has no ARN: its Details.AccountId wins over AwsAccountId and the envelope.
    let mut e = fixture("securityhub-iam22-access-key.json");
    e["detail"]["findings"][0]["AwsAccountId"] = json!("999988887777");
    let c = classify(&e, &rules);
    assert_eq!(
        c.candidate().unwrap().nominee.account(),
        Some("123456789012")
    );

    // Security Hub V2: the ARN in uid_alt wins over cloud.account.uid and the envelope.
    let mut e = fixture("securityhub-v2-iam8-user.json");
    e["account"] = json!("111122223333");
    e["detail"]["findings"][0]["cloud"]["account"]["uid"] = json!("444455556666");
    e["detail"]["findings"][0]["resources"][0]["owner"]["account"]["uid"] = json!("444455556666");
    let c = classify(&e, &rules);
    assert_eq!(
        c.candidate().unwrap().nominee.account(),
        Some("123456789012")
    );
}

#[test]
fn config_account_comes_from_aws_account_id() {
    let mut e = fixture("config-user-noncompliant-aida.json");
    e["account"] = json!("999988887777");
    let c = classify(&e, &rules());
    assert_eq!(
        c.candidate().unwrap().nominee.account(),
        Some("123456789012")
    );
    // Without it, the envelope's.
    e["detail"].as_object_mut().unwrap().remove("awsAccountId");
    let c = classify(&e, &rules());
    assert_eq!(
        c.candidate().unwrap().nominee.account(),
        Some("999988887777")
    );
}

#[test]
fn config_checks_unique_id_against_resource_type() {
    let mut e = fixture("config-user-noncompliant-aida.json");
    e["detail"]["resourceType"] = json!("AWS::IAM::Role");
    let c = classify(&e, &rules());
    assert_eq!(c.outcome(), "invalid", "{c:?}");
    assert!(c
        .reason()
        .contains("is a user id but the resource type is AWS::IAM::Role"));

    let mut e = fixture("config-user-noncompliant-aida.json");
    e["detail"]["resourceType"] = json!("AWS::S3::Bucket");
    assert!(classify(&e, &rules())
        .reason()
        .contains("is not an IAM user or role"));

    // Configured rules are matched exactly.
    let custom = ClassifyRules {
        config_rules: vec!["access-keys-rotated".into()],
    };
    assert_eq!(
        classify(&fixture("config-rule-not-configured.json"), &custom).outcome(),
        "candidate"
    );
}

#[test]
fn access_analyzer_keeps_what_get_finding_v2_needs() {
    let c = classify(&fixture("access-analyzer-unused-access-key.json"), &rules());
    let f = c.candidate().unwrap();
    assert_eq!(
        f.analyzer_finding_id.as_deref(),
        Some("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    );
    assert_eq!(
        f.analyzer_arn.as_deref(),
        Some("arn:aws:access-analyzer:us-west-2:123456789012:analyzer/UnusedAccess-org")
    );
    assert_eq!(f.observed_last_used, None);

    // A role finding that names a user is malformed.
    let mut e = fixture("access-analyzer-unused-role.json");
    e["detail"]["resource"] = json!("arn:aws:iam::111122223333:user/bob");
    let c = classify(&e, &rules());
    assert_eq!(c.outcome(), "invalid");
    assert!(
        c.reason().contains("names a user, expected a role"),
        "{c:?}"
    );

    // A deleted finding nominates nothing.
    let mut e = fixture("access-analyzer-unused-role.json");
    e["detail"]["isDeleted"] = json!(true);
    assert!(classify(&e, &rules()).reason().contains("deleted"));
}

#[test]
fn security_hub_multi_finding_events() {
    let e = fixture("securityhub-multiple-findings.json");
    let all = classify_all(&e, &rules());
    let outcomes: Vec<_> = all.iter().map(Classification::outcome).collect();
    assert_eq!(outcomes, ["ignored", "candidate"]);
    assert!(all[0].reason().contains("(finding 1 of 2 in the event)"));

    // No candidate among several: ignored, with the count.
    let mut e = e;
    e["detail"]["findings"][1]["Compliance"]["Status"] = json!("PASSED");
    let c = classify(&e, &rules());
    assert_eq!(c.outcome(), "ignored");
    assert!(
        c.reason()
            .contains("none of the other 1 findings nominates"),
        "{c:?}"
    );

    // Malformed container.
    let mut e = fixture("securityhub-iam8-user.json");
    e["detail"]["findings"] = json!({});
    let c = classify(&e, &rules());
    assert_eq!(c.outcome(), "invalid");
    assert!(c
        .reason()
        .contains("detail.findings must be an array, not an object"));
}

#[test]
fn security_hub_skips_temporary_keys_and_wrong_types() {
    let mut e = fixture("securityhub-iam22-access-key.json");
    e["detail"]["findings"][0]["Resources"][0]["Details"]["AwsIamAccessKey"]["AccessKeyId"] =
        json!("ASIAIOSFODNN7EXAMPLE");
    assert!(classify(&e, &rules()).reason().contains("temporary"));

    let mut e = fixture("securityhub-iam22-access-key.json");
    e["detail"]["findings"][0]["Resources"][0]["Details"]["AwsIamAccessKey"]["PrincipalType"] =
        json!("AssumedRole");
    assert_eq!(classify(&e, &rules()).outcome(), "ignored");

    // No key id anywhere: the key is found later.
    let mut e = fixture("securityhub-iam22-access-key.json");
    let r = &mut e["detail"]["findings"][0]["Resources"][0];
    r["Details"]["AwsIamAccessKey"]
        .as_object_mut()
        .unwrap()
        .remove("AccessKeyId");
    r["Id"] = json!("ci-deployer-key");
    let c = classify(&e, &rules());
    assert_eq!(
        c.candidate().unwrap().nominee,
        Nominee::AccessKeyOf {
            account: "123456789012".into(),
            path: None,
            user: "ci-deployer".into()
        }
    );

    let mut e = fixture("securityhub-iam8-user.json");
    e["detail"]["findings"][0]["Compliance"]["Status"] = json!(3);
    let c = classify(&e, &rules());
    assert_eq!(c.outcome(), "invalid");
    assert!(
        c.reason()
            .contains("detail.findings[0].Compliance.Status must be a string, not a number"),
        "{c:?}"
    );
}

#[test]
fn security_hub_v2_status_rules() {
    let mut e = fixture("securityhub-v2-iam8-user.json");
    e["detail"]["findings"][0]["status"] = json!("Suppressed");
    assert!(classify(&e, &rules()).reason().contains("Suppressed"));

    let mut e = fixture("securityhub-v2-iam8-user.json");
    e["detail"]["findings"][0]["compliance"]["status"] = json!("Pass");
    assert!(classify(&e, &rules())
        .reason()
        .contains("only Fail nominates"));

    let mut e = fixture("securityhub-v2-iam8-user.json");
    e["detail"]["findings"][0]["compliance"]["control"] = json!("S3.1");
    assert!(classify(&e, &rules())
        .reason()
        .contains("not an unused-credentials control"));

    // Without an ARN, the unique id in uid.
    let mut e = fixture("securityhub-v2-iam8-user.json");
    e["detail"]["findings"][0]["resources"][0]
        .as_object_mut()
        .unwrap()
        .remove("uid_alt");
    assert_eq!(
        classify(&e, &rules()).candidate().unwrap().nominee,
        Nominee::UniqueId {
            account: "123456789012".into(),
            kind: PrincipalKind::User,
            unique_id: "AIDAJQABLZS4A3QDU576Q".into()
        }
    );
}

#[test]
fn cloudtrail_rules() {
    // Tag keys compare case-insensitively.
    let mut e = fixture("cloudtrail-tagrole-other-tag.json");
    e["detail"]["requestParameters"]["tags"][1]["key"] = json!("Dormant:Exempt");
    assert_eq!(classify(&e, &rules()).outcome(), "candidate");

    // The account: recipientAccountId, else userIdentity.accountId.
    let mut e = fixture("cloudtrail-tagrole-dormant-exempt.json");
    e["detail"]["recipientAccountId"] = json!("444455556666");
    assert_eq!(
        classify(&e, &rules())
            .candidate()
            .unwrap()
            .nominee
            .account(),
        Some("444455556666")
    );
    e["detail"]
        .as_object_mut()
        .unwrap()
        .remove("recipientAccountId");
    assert_eq!(
        classify(&e, &rules())
            .candidate()
            .unwrap()
            .nominee
            .account(),
        Some("123456789012")
    );

    // Names must be IAM names.
    let mut e = fixture("cloudtrail-tagrole-dormant-exempt.json");
    e["detail"]["requestParameters"]["roleName"] = json!("not a name!");
    let c = classify(&e, &rules());
    assert_eq!(c.outcome(), "invalid");
    assert!(c.reason().contains("is not an IAM name"));

    // Other IAM calls are not tag changes.
    let mut e = fixture("cloudtrail-tagrole-dormant-exempt.json");
    e["detail"]["eventName"] = json!("CreateRole");
    assert!(classify(&e, &rules())
        .reason()
        .contains("does not change a role's or user's tags"));
}

#[test]
fn envelope_problems_name_the_field() {
    let rules = rules();
    let base = fixture("schedule-sweep.json");
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|e| *e = json!([1, 2])),
            "must be a JSON object, not an array",
        ),
        (
            Box::new(|e| e["id"] = json!(7)),
            "id must be a string, not a number",
        ),
        (
            Box::new(|e| e["id"] = json!("")),
            "\"id\" is missing or empty",
        ),
        (
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("source");
            }),
            "\"source\" is missing",
        ),
        (
            Box::new(|e| e["account"] = json!("12345")),
            "\"account\" must be a 12-digit AWS account id",
        ),
        (
            Box::new(|e| e["detail"] = json!("sweep")),
            "\"detail\" must be an object, not a string",
        ),
        (
            Box::new(|e| e["detail"]["action"] = json!("nap")),
            "unknown detail.action \"nap\"",
        ),
    ];
    for (mutate, reason) in cases {
        let mut e = base.clone();
        mutate(&mut e);
        let c = classify(&e, &rules);
        assert_eq!(c.outcome(), "invalid", "{reason}: {c:?}");
        assert!(c.reason().contains(reason), "{reason}: {c:?}");
    }
    let mut e = base.clone();
    e["source"] = json!("aws.guardduty");
    let c = classify(&e, &rules);
    assert_eq!((c.outcome(), c.source()), ("ignored", None));
}

#[test]
fn classify_output_json_shape() {
    let rules = rules();
    let c = classify_bytes(&fixture_bytes("config-role-noncompliant-aroa.json"), &rules);
    assert_eq!(
        classification_json(&c),
        json!({
            "outcome": "candidate",
            "source": "config",
            "identity": "role with unique id AROA3XFRBF535PLBIFPI4",
            "finding": "iam-role-last-used",
            "reason": "AWS Config rule iam-role-last-used found role AROA3XFRBF535PLBIFPI4 NON_COMPLIANT: \"Role has not been used in the last 90 days.\"",
            "event_id": "51677f1d-1ae8-5357-cc9b-387ac98e26ab",
            "account": "111122223333",
        })
    );
    let c = classify_bytes(
        &fixture_bytes("access-analyzer-unused-password.json"),
        &rules,
    );
    assert_eq!(
        classification_json(&c)["identity"],
        "arn:aws:iam::111122223333:user/engineering/alice/password"
    );
    let c = classify_bytes(&fixture_bytes("cloudtrail-tagrole-other-tag.json"), &rules);
    let j = classification_json(&c);
    assert_eq!(
        (&j["outcome"], &j["source"], &j["identity"], &j["finding"]),
        (
            &json!("ignored"),
            &json!("cloudtrail"),
            &Value::Null,
            &Value::Null
        )
    );
    let c = classify_bytes(b"{", &rules);
    let j = classification_json(&c);
    assert_eq!(
        (&j["outcome"], &j["source"], &j["event_id"]),
        (&json!("invalid"), &Value::Null, &Value::Null)
    );
}
