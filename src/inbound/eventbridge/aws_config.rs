//! AWS Config: `Config Rules Compliance Change`.

use super::*;

pub(super) fn config(cx: &Cx, detail: &Value) -> Parsed<Outcome> {
    const QUALIFIER: [&str; 3] = [
        "newEvaluationResult",
        "evaluationResultIdentifier",
        "evaluationResultQualifier",
    ];
    let rule = required(
        str_at(detail, "detail", &["configRuleName"]),
        "detail.configRuleName",
    )?;
    // Not our rule: nothing else about the event matters.
    if !cx.rules.config_rules.iter().any(|r| r == rule) {
        return Ok(Outcome::Skip(format!(
            "AWS Config rule {} is not one of the configured inactivity rules (sources.config_rules)",
            quote(rule)
        )));
    }
    let compliance = required(
        str_at(detail, "detail", &["newEvaluationResult", "complianceType"]),
        "detail.newEvaluationResult.complianceType",
    )?;
    if compliance != "NON_COMPLIANT" {
        return Ok(Outcome::Skip(format!(
            "rule {rule} reports {}: only NON_COMPLIANT nominates",
            quote(compliance)
        )));
    }
    let resource_type = match str_at(detail, "detail", &["resourceType"])? {
        Some(t) => t,
        None => required(
            str_at(
                detail,
                "detail",
                &[QUALIFIER[0], QUALIFIER[1], QUALIFIER[2], "resourceType"],
            ),
            "detail.resourceType",
        )?,
    };
    let kind = match resource_type {
        "AWS::IAM::User" => PrincipalKind::User,
        "AWS::IAM::Role" => PrincipalKind::Role,
        other => {
            return Ok(Outcome::Skip(format!(
                "resource type {} is not an IAM user or role",
                quote(other)
            )))
        }
    };
    let resource_id = match str_at(detail, "detail", &["resourceId"])? {
        Some(r) => r,
        None => required(
            str_at(
                detail,
                "detail",
                &[QUALIFIER[0], QUALIFIER[1], QUALIFIER[2], "resourceId"],
            ),
            "detail.resourceId",
        )?,
    };
    // `awsAccountId` is the evaluated resource's account; it wins over the envelope's.
    let account = account_or(
        str_at(detail, "detail", &["awsAccountId"])?,
        "detail.awsAccountId",
        cx.account,
    )?;
    let nominee = if resource_id.starts_with("arn:") {
        principal_nominee(
            iam_arn(resource_id, "detail.resourceId", kind)?,
            Scope::Whole,
        )
    } else if let Some(id_kind) = unique_id_kind(resource_id) {
        match id_kind {
            Some(k) if k == kind => Nominee::UniqueId {
                account: account.to_string(),
                kind,
                unique_id: resource_id.to_string(),
            },
            Some(k) => {
                return Err(format!(
                    "detail.resourceId {resource_id} is a {} id but the resource type is {resource_type}",
                    k.as_str()
                ))
            }
            None => {
                return Err(format!(
                    "detail.resourceId {resource_id} is the unique id of neither a user nor a role"
                ))
            }
        }
    } else if is_iam_name(resource_id) {
        // Some custom rules report the name rather than the unique id.
        Nominee::Principal {
            account: account.to_string(),
            kind,
            path: None,
            name: resource_id.to_string(),
            scope: Scope::Whole,
        }
    } else {
        return Err(format!(
            "detail.resourceId {} is neither an IAM unique id, an IAM ARN nor an IAM name",
            quote(resource_id)
        ));
    };
    let annotation = match str_at(detail, "detail", &["newEvaluationResult", "annotation"]) {
        Ok(Some(a)) if !a.is_empty() => format!(": {}", quote(a)),
        _ => String::new(),
    };
    let reason = format!(
        "AWS Config rule {rule} found {} {resource_id} NON_COMPLIANT{annotation}",
        kind.as_str()
    );
    Ok(Outcome::Candidate(cx.finding(nominee, rule, reason)))
}
