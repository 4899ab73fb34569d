//! The CDK app grants the controller exactly the IAM actions the steps declare: `cdk/permissions.json`
//! is what the CDK reads, and it must be what `dormant permissions --output json` prints today.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_cdk_copy_of_the_permissions_matches_the_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_dormant"))
        .args(["permissions", "--output", "json"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "permissions needs no AWS access");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/cdk/permissions.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        printed, committed,
        "cdk/permissions.json is stale: regenerate it with `cargo run -q --bin dormant -- permissions --output json > cdk/permissions.json`"
    );
    let all = printed["all"].as_array().unwrap();
    assert!(all.iter().all(|a| a
        .as_str()
        .is_some_and(|a| a.starts_with("iam:") && !a.contains('*'))));
}
