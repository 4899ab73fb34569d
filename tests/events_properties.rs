//! The classifier never panics, whatever it is given, and anything it does not nominate comes with
//! a reason: arbitrary JSON, real fixtures with fields deleted or retyped, truncated bytes, and
//! payloads over EventBridge's 256 KiB limit.

use std::path::PathBuf;
use std::sync::OnceLock;

use dormant::domain::finding::{Classification, Nominee};
use dormant::inbound::eventbridge::{
    classification_json, classify, classify_all, classify_bytes, ClassifyRules, MAX_EVENT_BYTES,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn rules() -> ClassifyRules {
    ClassifyRules {
        config_rules: vec![
            "iam-user-unused-credentials-check".into(),
            "iam-role-last-used".into(),
        ],
    }
}

/// `(file name, bytes)` of every fixture, read once.
fn fixtures() -> &'static [(String, Vec<u8>)] {
    static FIXTURES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events");
        let mut all: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        all.sort();
        all
    })
}

/// Fixtures that parse as JSON.
fn fixture_values() -> Vec<Value> {
    fixtures()
        .iter()
        .filter_map(|(_, b)| serde_json::from_slice(b).ok())
        .collect()
}

/// IAM's rule for role and user names, written from the IAM API reference (`CreateRole`
/// `RoleName`, `CreateUser` `UserName`), not from dormant's code: 1 to 64 characters, "upper and
/// lowercase alphanumeric characters with no spaces" and any of `_+=,.@-` (pattern
/// `[\w+=,.@-]+`).
fn iam_name_by_the_docs(name: &str) -> bool {
    let n = name.chars().count();
    (1..=64).contains(&n)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// An AWS account id: 12 digits.
fn account_id_by_the_docs(id: &str) -> bool {
    id.len() == 12 && id.chars().all(|c| c.is_ascii_digit())
}

/// Candidate names: valid ones, ones too long, and ones with a character IAM refuses (space,
/// slash, colon, non-ASCII letters and digits, a zero-width space) among valid ones.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_+=,.@-]{1,64}",
        "[A-Za-z0-9_+=,.@-]{65,80}",
        "[A-Za-z0-9_+=,.@ /:#*é٣Ａ\u{200b}-]{0,70}",
        "\\PC{1,40}",
    ]
}

/// What must hold for every verdict.
fn check(c: &Classification) -> Result<(), TestCaseError> {
    prop_assert!(!c.reason().is_empty(), "empty reason: {c:?}");
    if let Some(f) = c.candidate() {
        prop_assert!(!f.event_id.is_empty());
        match &f.nominee {
            Nominee::Principal { account, name, .. } => {
                prop_assert!(account_id_by_the_docs(account), "{c:?}");
                prop_assert!(iam_name_by_the_docs(name), "{c:?}");
            }
            Nominee::UniqueId { account, .. } => {
                prop_assert!(account_id_by_the_docs(account), "{c:?}")
            }
            Nominee::AccessKeyOf { account, user, .. } => {
                prop_assert!(account_id_by_the_docs(account), "{c:?}");
                prop_assert!(iam_name_by_the_docs(user), "{c:?}");
            }
            Nominee::Sweep | Nominee::Tick => {}
        }
    }
    // The CLI rendering never fails either.
    let j = classification_json(c);
    prop_assert_eq!(&j["outcome"], &json!(c.outcome()));
    Ok(())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::from),
        // Strings the parsers look for, so that arbitrary trees reach deep code.
        prop::sample::select(vec![
            "aws.config",
            "Config Rules Compliance Change",
            "NON_COMPLIANT",
            "AWS::IAM::User",
            "AWS::IAM::Role",
            "AIDACKCEVSQ6C2EXAMPLE",
            "AROA3XFRBF535PLBIFPI4",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:user/a/b",
            "AKIAIOSFODNN7EXAMPLE",
            "123456789012",
            "UnusedIAMRole",
            "UnusedIAMUserAccessKey",
            "ACTIVE",
            "FAILED",
            "IAM.8",
            "AwsIamUser",
            "AwsIamAccessKey",
            "dormant:exempt",
            "TagRole",
            "sweep",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "source",
                    "detail-type",
                    "account",
                    "detail",
                    "findings",
                    "Resources",
                    "Type",
                    "Id",
                    "Compliance",
                    "Status",
                    "resource",
                    "findingType",
                    "status",
                    "requestParameters",
                    "tags",
                    "key",
                    "roleName",
                    "action",
                    "x",
                ])
                .prop_map(String::from),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The `(source, detail-type)` pairs dormant routes, to wrap arbitrary details in.
const ROUTES: [(&str, &str); 6] = [
    ("aws.config", "Config Rules Compliance Change"),
    (
        "aws.access-analyzer",
        "Unused Access Finding for IAM entities",
    ),
    ("aws.securityhub", "Security Hub Findings - Imported"),
    ("aws.securityhub", "Findings Imported V2"),
    ("aws.iam", "AWS API Call via CloudTrail"),
    ("aws.events", "Scheduled Event"),
];

/// Every JSON pointer into `v`, parents before children.
fn pointers(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), v)];
    while let Some((p, v)) = stack.pop() {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    stack.push((format!("{p}/{key}"), c));
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    stack.push((format!("{p}/{i}"), c));
                }
            }
            _ => {}
        }
        out.push(p);
    }
    out
}

/// Deletes the value at `pointer` (a no-op for the root).
fn delete(v: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&key);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        check(&classify(&v, &rules()))?;
        for c in classify_all(&v, &rules()) {
            check(&c)?;
        }
        check(&classify_bytes(&serde_json::to_vec(&v).unwrap(), &rules()))?;
    }

    #[test]
    fn arbitrary_details_in_a_valid_envelope_never_panic(
        route in prop::sample::select(ROUTES.to_vec()),
        detail in arb_json(),
    ) {
        let event = json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "source": route.0, "detail-type": route.1, "account": "123456789012",
            "time": "2026-03-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": detail,
        });
        let c = classify(&event, &rules());
        check(&c)?;
        prop_assert_eq!(c.event_id(), Some("6a7e8feb-b491-4cf7-a9f1-bf3703467718"));
    }

    #[test]
    fn fixtures_with_a_field_deleted_or_retyped_never_panic(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        replacement in prop::option::of(arb_json()),
    ) {
        let values = fixture_values();
        let mut v = which.get(&values).clone();
        let ps = pointers(&v);
        let p = at.get(&ps).clone();
        match replacement {
            None => delete(&mut v, &p),
            Some(r) => {
                if let Some(slot) = v.pointer_mut(&p) {
                    *slot = r;
                }
            }
        }
        check(&classify(&v, &rules()))?;
        for c in classify_all(&v, &rules()) {
            check(&c)?;
        }
    }

    #[test]
    fn truncated_fixtures_never_panic(which in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let (name, bytes) = which.get(fixtures());
        let n = cut.index(bytes.len());
        let c = classify_bytes(&bytes[..n], &rules());
        check(&c)?;
        // Cut inside the JSON text (not just trailing whitespace): never a candidate.
        if bytes[n..].iter().any(|b| !b.is_ascii_whitespace()) {
            prop_assert_ne!(c.outcome(), "candidate", "{} cut at {}", name, n);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&classify_bytes(&bytes, &rules()))?;
    }

    /// A role name is nominated exactly when IAM's own rule allows it: unicode, spaces, slashes
    /// and names over 64 characters are refused with a reason.
    #[test]
    fn a_name_is_nominated_exactly_when_iams_rules_allow_it(name in name_like()) {
        let mut v: Value = serde_json::from_slice(
            &fixtures().iter().find(|(n, _)| n == "cloudtrail-tagrole-dormant-exempt.json").unwrap().1,
        ).unwrap();
        v["detail"]["requestParameters"]["roleName"] = json!(name.clone());
        let c = classify(&v, &rules());
        check(&c)?;
        prop_assert_eq!(c.outcome() == "candidate", iam_name_by_the_docs(&name), "{}: {:?}", name, c);
    }
}

#[test]
fn oversized_payloads_are_invalid() {
    let rules = rules();
    let (_, bytes) = fixtures()
        .iter()
        .find(|(n, _)| n == "securityhub-iam8-user.json")
        .unwrap();
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    v["detail"]["findings"][0]["Description"] = json!("x".repeat(MAX_EVENT_BYTES));
    let c = classify(&v, &rules);
    assert_eq!(c.outcome(), "invalid", "{c:?}");
    assert!(c.reason().contains("256 KiB"));
    let c = classify_bytes(&serde_json::to_vec(&v).unwrap(), &rules);
    assert_eq!(c.outcome(), "invalid");
    assert!(c.reason().contains("256 KiB"));

    // Many small findings add up too.
    let mut finding = v["detail"]["findings"][0].clone();
    finding["Description"] = json!("short");
    v["detail"]["findings"] = Value::Array(vec![finding; 200]);
    assert_eq!(classify(&v, &rules).outcome(), "invalid");

    // Just under the limit still classifies.
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    let size = serde_json::to_vec(&v).unwrap().len();
    v["detail"]["findings"][0]["Description"] = json!("x".repeat(MAX_EVENT_BYTES - size - 64));
    assert_eq!(classify(&v, &rules).outcome(), "candidate");
    assert_eq!(
        classify_bytes(&serde_json::to_vec(&v).unwrap(), &rules).outcome(),
        "candidate"
    );
}

#[test]
fn deep_nesting_is_invalid_not_a_crash() {
    let rules = rules();
    // serde_json stops at 128 levels; the payload stays under the size cap.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let c = classify_bytes(deep.as_bytes(), &rules);
    assert_eq!(c.outcome(), "invalid");
    let deep_detail = format!(
        r#"{{"id":"x","source":"aws.config","detail-type":"Config Rules Compliance Change","account":"123456789012","detail":{}{}}}"#,
        "{\"a\":".repeat(5_000),
        "1".to_string() + &"}".repeat(5_000)
    );
    let c = classify_bytes(deep_detail.as_bytes(), &rules);
    assert_eq!(c.outcome(), "invalid", "{c:?}");
}
