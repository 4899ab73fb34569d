//! IAM Access Analyzer: `Unused Access Finding for IAM entities`.

use super::*;

pub(super) fn access_analyzer(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    enum Want {
        Role,
        Key,
        Password,
    }
    let finding_type = required(
        str_at(detail, "detail", &["findingType"]),
        "detail.findingType",
    )?;
    let want = match finding_type {
        "UnusedIAMRole" => Want::Role,
        "UnusedIAMUserAccessKey" => Want::Key,
        "UnusedIAMUserPassword" => Want::Password,
        "UnusedPermission" => {
            return Ok(Outcome::Skip(
                "UnusedPermission findings are out of scope: dormant retires unused identities and credentials, not permissions".to_string(),
            ))
        }
        other => {
            return Ok(Outcome::Skip(format!(
                "finding type {} is not an unused role, access key or password",
                quote(other)
            )))
        }
    };
    if let Some(error) = present(detail, "error") {
        return Ok(Outcome::Skip(format!(
            "Access Analyzer could not analyze the resource (error {})",
            describe(error)
        )));
    }
    if bool_at(detail, "detail", "isDeleted")? == Some(true) {
        return Ok(Outcome::Skip("the finding was deleted".to_string()));
    }
    let status = required(str_at(detail, "detail", &["status"]), "detail.status")?;
    if status != "ACTIVE" {
        return Ok(Outcome::Skip(format!(
            "finding status is {}: only ACTIVE nominates",
            quote(status)
        )));
    }
    let resource = required(str_at(detail, "detail", &["resource"]), "detail.resource")?;
    let kind = match want {
        Want::Role => PrincipalKind::Role,
        Want::Key | Want::Password => PrincipalKind::User,
    };
    // The ARN's account wins over `accountId`/`resourceOwnerAccount` and the envelope's.
    let principal = iam_arn(resource, "detail.resource", kind)?;
    let finding_id = match str_at(detail, "detail", &["findingId"])? {
        Some(id) => Some(id),
        None => str_at(detail, "detail", &["id"])?,
    };
    let analyzer = match cx.event.get("resources") {
        Some(Value::Array(rs)) => rs.iter().find_map(Value::as_str),
        _ => None,
    };
    let nominee = match want {
        Want::Role => principal_nominee(principal, Scope::Whole),
        Want::Password => principal_nominee(principal, Scope::Password),
        // The event does not carry the key id; GetFindingV2's details would.
        Want::Key => match key_in_finding_details(detail)? {
            Some(key) => principal_nominee(principal, Scope::AccessKey(key.to_string())),
            None => Nominee::AccessKeyOf {
                account: principal.account,
                path: Some(principal.path),
                user: principal.name,
            },
        },
    };
    let reason = format!("IAM Access Analyzer reports {finding_type} for {resource}");
    let mut f = cx.finding(nominee, finding_type, reason);
    f.analyzer_finding_id = finding_id.map(str::to_string);
    f.analyzer_arn = analyzer.map(str::to_string);
    Ok(Outcome::Candidate(f))
}

/// `detail.findingDetails[].unusedIamUserAccessKeyDetails.accessKeyId`, the `GetFindingV2` shape,
/// in case an event ever carries it.
pub(super) fn key_in_finding_details(detail: &Value) -> Parsed<Option<&str>> {
    let Some(Value::Array(items)) = present(detail, "findingDetails") else {
        return Ok(None);
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("detail.findingDetails[{i}]");
        if let Some(key) = str_at(
            item,
            &path,
            &["unusedIamUserAccessKeyDetails", "accessKeyId"],
        )? {
            if !is_access_key_id(key) {
                return Err(format!("{path}: {} is not an access key id", quote(key)));
            }
            return Ok(Some(key));
        }
    }
    Ok(None)
}
