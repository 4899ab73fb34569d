//! The sweep queue's message body: `{"dormant":"sweep-account","account":"…","run":"…"}`.
//! Written by the fanned-out scheduled sweep, read by the SQS-triggered Lambda (parse and
//! validate only).

use serde::{Deserialize, Serialize};

use crate::domain::subject::is_account_id;
use crate::ports::AccountSweep;

/// The `dormant` field: what the message asks for.
pub const SWEEP_ACCOUNT: &str = "sweep-account";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    dormant: &'a str,
    account: &'a str,
    run: &'a str,
}

pub fn encode(request: &AccountSweep) -> String {
    serde_json::json!({
        "dormant": SWEEP_ACCOUNT,
        "account": request.account,
        "run": request.run,
    })
    .to_string()
}

/// The request in a message body, or why it is not one (the caller names the message).
pub fn decode(body: &str) -> Result<AccountSweep, String> {
    let b: Body = serde_json::from_str(body).map_err(|e| format!("not a dormant message: {e}"))?;
    if b.dormant != SWEEP_ACCOUNT {
        return Err(format!(
            "unknown request dormant = {:?} (expected {SWEEP_ACCOUNT:?})",
            b.dormant
        ));
    }
    if !is_account_id(b.account) {
        return Err(format!(
            "account {:?} is not a 12-digit account id",
            b.account
        ));
    }
    if b.run.trim().is_empty() {
        return Err("run must not be empty".to_string());
    }
    Ok(AccountSweep {
        account: b.account.to_string(),
        run: b.run.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_the_round_trip() {
        let r = AccountSweep {
            account: "123456789012".into(),
            run: "run-1".into(),
        };
        assert_eq!(decode(&encode(&r)), Ok(r));
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (body, why) in [
            ("not json", "not a dormant message"),
            (
                r#"{"dormant":"sweep-account","account":"12","run":"r"}"#,
                "12-digit",
            ),
            (
                r#"{"dormant":"delete-all","account":"123456789012","run":"r"}"#,
                "unknown request",
            ),
            (
                r#"{"dormant":"sweep-account","account":"123456789012","run":" "}"#,
                "run",
            ),
            (
                r#"{"dormant":"sweep-account","account":"123456789012","run":"r","x":1}"#,
                "unknown field",
            ),
            (r#"{"dormant":"sweep-account","run":"r"}"#, "missing field"),
        ] {
            let e = decode(body).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}
