//! CloudTrail: `AWS API Call via CloudTrail` for the IAM tag calls.

use super::*;

pub(super) fn cloudtrail(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    let event_name = required(str_at(detail, "detail", &["eventName"]), "detail.eventName")?;
    if let Some(src) = str_at(detail, "detail", &["eventSource"])? {
        if src != "iam.amazonaws.com" {
            return Ok(Outcome::Skip(format!(
                "API calls to {} are not IAM calls",
                quote(src)
            )));
        }
    }
    let (kind, name_field, untag) = match event_name {
        "TagRole" => (PrincipalKind::Role, "roleName", false),
        "UntagRole" => (PrincipalKind::Role, "roleName", true),
        "TagUser" => (PrincipalKind::User, "userName", false),
        "UntagUser" => (PrincipalKind::User, "userName", true),
        other => {
            return Ok(Outcome::Skip(format!(
                "IAM call {} does not change a role's or user's tags",
                quote(other)
            )))
        }
    };
    if let Some(code) = present(detail, "errorCode") {
        return Ok(Outcome::Skip(format!(
            "the {event_name} call failed ({}): nothing changed",
            describe(code)
        )));
    }
    let params = match present(detail, "requestParameters") {
        Some(p @ Value::Object(_)) => p,
        Some(other) => {
            return Err(format!(
                "detail.requestParameters must be an object, not {}",
                type_name(other)
            ))
        }
        None => return Err("detail.requestParameters is missing".to_string()),
    };
    let keys = tag_keys(params, untag)?;
    let dormant: Vec<&str> = keys.iter().copied().filter(|k| is_dormant_tag(k)).collect();
    if dormant.is_empty() {
        return Ok(Outcome::Skip(if keys.is_empty() {
            format!("{event_name} changed no tags")
        } else {
            format!("not a dormant:* tag (changed {})", list(&keys))
        }));
    }
    let name = required(
        str_at(params, "detail.requestParameters", &[name_field]),
        &format!("detail.requestParameters.{name_field}"),
    )?;
    // The account that received the call owns the principal.
    let account = match str_at(detail, "detail", &["recipientAccountId"])? {
        Some(a) => account_or(Some(a), "detail.recipientAccountId", cx.account)?,
        None => account_or(
            str_at(detail, "detail", &["userIdentity", "accountId"])?,
            "detail.userIdentity.accountId",
            cx.account,
        )?,
    };
    let nominee = principal_by_name(
        account,
        kind,
        None,
        name,
        Scope::Whole,
        "detail.requestParameters",
    )?;
    let reason = format!(
        "{event_name} changed {} on {}/{name}: re-evaluate now",
        list(&dormant),
        kind.as_str()
    );
    Ok(Outcome::Candidate(cx.finding(nominee, event_name, reason)))
}

/// `requestParameters.tags[].key` (Tag*) or `requestParameters.tagKeys[]` (Untag*).
pub(super) fn tag_keys(params: &Value, untag: bool) -> Parsed<Vec<&str>> {
    let field = if untag { "tagKeys" } else { "tags" };
    let items = required_array(params, "detail.requestParameters", field)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("detail.requestParameters.{field}[{i}]");
            if untag {
                item.as_str()
                    .ok_or_else(|| format!("{path} must be a string, not {}", type_name(item)))
            } else {
                required(str_at(item, &path, &["key"]), &format!("{path}.key"))
            }
        })
        .collect()
}

/// IAM tag keys are case-insensitive for uniqueness, so `Dormant:Exempt` counts too (the
/// exemption check reads it the same way).
pub(super) fn is_dormant_tag(key: &str) -> bool {
    crate::domain::tag::is_dormant_key(key)
}
