//! Security Hub: `Security Hub Findings - Imported` (ASFF) and `Findings Imported V2` (OCSF).

use super::*;
use crate::domain::security_hub::HubFindingRef;

/// The controls that mean "unused credentials".
pub(super) const SECURITY_CONTROLS: [&str; 2] = ["IAM.8", "IAM.22"];

pub(super) type FindingParser = fn(&Cx, &Value, &str) -> Parsed<Outcome>;

pub(super) fn security_hub(cx: &Cx, detail: &Value, parse: FindingParser) -> Vec<Parsed<Outcome>> {
    match present(detail, "findings") {
        Some(Value::Array(findings)) if findings.is_empty() => {
            vec![Ok(Outcome::Skip(
                "the event carries no findings".to_string(),
            ))]
        }
        Some(Value::Array(findings)) => findings
            .iter()
            .enumerate()
            .map(|(i, f)| parse(cx, f, &format!("detail.findings[{i}]")))
            .collect(),
        Some(other) => vec![Err(format!(
            "detail.findings must be an array, not {}",
            type_name(other)
        ))],
        None => vec![Err("detail.findings is missing".to_string())],
    }
}

/// A control finding's control, as the reason names it.
pub(super) struct Control {
    pub(super) label: String,
    pub(super) in_scope: bool,
}

/// CIS AWS Foundations Benchmark numbers are per version: 1.12 is "credentials unused for 45
/// days" in v1.4.0 and v3.0.0 but "no root access key" in v1.2.0 (Security Hub maps it to IAM.4).
pub(super) fn cis_control(version: &str, number: &str) -> Control {
    let in_scope = matches!(
        (version, number),
        ("1.2.0", "1.3") | ("1.4.0", "1.12") | ("3.0.0", "1.12") | ("5.0.0", "1.11")
    );
    Control {
        label: format!("CIS {number}"),
        in_scope,
    }
}

/// `(version, number)` from `…cis-aws-foundations-benchmark/v/1.2.0/rule/1.3` or
/// `…cis-aws-foundations-benchmark/v/1.4.0/1.12`.
pub(super) fn cis_generator(generator: &str) -> Option<(&str, &str)> {
    let (_, rest) = generator.split_once("cis-aws-foundations-benchmark/v/")?;
    let (version, rest) = rest.split_once('/')?;
    let number = rest.strip_prefix("rule/").unwrap_or(rest);
    let number = number.split('/').next().unwrap_or(number);
    (!version.is_empty() && !number.is_empty()).then_some((version, number))
}

/// The standard's version from `ProductFields.StandardsArn`/`StandardsGuideArn` (CIS only).
pub(super) fn cis_version_of(standards_arn: &str) -> Option<&str> {
    let (_, rest) = standards_arn.split_once("cis-aws-foundations-benchmark/v/")?;
    rest.split('/').next().filter(|v| !v.is_empty())
}

pub(super) fn asff_control(f: &Value, path: &str) -> Parsed<Option<Control>> {
    let security_control = str_at(f, path, &["Compliance", "SecurityControlId"])?;
    let generator = str_at(f, path, &["GeneratorId"])?;
    let product_control = str_at(f, path, &["ProductFields", "ControlId"])?;
    let rule_id = str_at(f, path, &["ProductFields", "RuleId"])?;
    let standards = match str_at(f, path, &["ProductFields", "StandardsArn"])? {
        Some(s) => Some(s),
        None => str_at(f, path, &["ProductFields", "StandardsGuideArn"])?,
    };
    let cis = generator.and_then(cis_generator).or_else(|| {
        let version = standards.and_then(cis_version_of)?;
        Some((version, rule_id.or(product_control)?))
    });
    let cis = cis.map(|(version, number)| cis_control(version, number));
    // The cross-standard id is authoritative when present; the CIS number only names it.
    if let Some(id) = security_control {
        let in_scope = SECURITY_CONTROLS.contains(&id);
        let label = match cis {
            Some(c) if c.in_scope && in_scope => c.label,
            _ => id.to_string(),
        };
        return Ok(Some(Control { label, in_scope }));
    }
    if let Some(c) = cis {
        return Ok(Some(c));
    }
    // `security-control/IAM.8`, `aws-foundational-security-best-practices/v/1.0.0/IAM.8`.
    let named = generator
        .and_then(|g| g.rsplit('/').next())
        .filter(|g| SECURITY_CONTROLS.contains(g))
        .or(product_control);
    Ok(named.or(generator).map(|label| Control {
        label: label.to_string(),
        in_scope: SECURITY_CONTROLS.contains(&label),
    }))
}

pub(super) fn scope_skip(label: &str) -> Outcome {
    Outcome::Skip(format!(
        "control {} is not an unused-credentials control (IAM.8, IAM.22, CIS 1.3 in v1.2.0, CIS 1.12 in v1.4.0/v3.0.0)",
        quote(label)
    ))
}

pub(super) fn asff(cx: &Cx, f: &Value, path: &str) -> Parsed<Outcome> {
    if !f.is_object() {
        return Err(format!("{path} must be an object, not {}", type_name(f)));
    }
    let Some(control) = asff_control(f, path)? else {
        return Ok(Outcome::Skip(
            "not a control finding (no Compliance.SecurityControlId or GeneratorId)".to_string(),
        ));
    };
    if !control.in_scope {
        return Ok(scope_skip(&control.label));
    }
    let label = control.label;
    match str_at(f, path, &["Compliance", "Status"])? {
        Some("FAILED") => {}
        Some(other) => {
            return Ok(Outcome::Skip(format!(
                "{label}: Compliance.Status is {}: only FAILED nominates",
                quote(other)
            )))
        }
        None => {
            return Ok(Outcome::Skip(format!(
                "{label}: no Compliance.Status: only FAILED nominates"
            )))
        }
    }
    if str_at(f, path, &["Workflow", "Status"])? == Some("SUPPRESSED") {
        return Ok(Outcome::Skip(format!(
            "{label}: the finding is suppressed (Workflow.Status SUPPRESSED)"
        )));
    }
    if str_at(f, path, &["RecordState"])? == Some("ARCHIVED") {
        return Ok(Outcome::Skip(format!(
            "{label}: the finding is archived (RecordState ARCHIVED)"
        )));
    }
    let finding_account = account_or(
        str_at(f, path, &["AwsAccountId"])?,
        &format!("{path}.AwsAccountId"),
        cx.account,
    )?;
    let resources = required_array(f, path, "Resources")?;
    let mut seen = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let rpath = format!("{path}.Resources[{i}]");
        let rtype = required(str_at(r, &rpath, &["Type"]), &format!("{rpath}.Type"))?;
        let nominee = match rtype {
            "AwsIamUser" => asff_principal(r, &rpath, PrincipalKind::User, finding_account)?,
            "AwsIamRole" => asff_principal(r, &rpath, PrincipalKind::Role, finding_account)?,
            "AwsIamAccessKey" => match asff_access_key(r, &rpath, finding_account)? {
                Ok(n) => n,
                Err(skip) => return Ok(Outcome::Skip(format!("{label}: {skip}"))),
            },
            other => {
                seen.push(other);
                continue;
            }
        };
        let what = nominee.identity_in(cx.partition).unwrap_or_default();
        let reason = format!("Security Hub {label} FAILED for {what}");
        let mut finding = cx.finding(nominee, &label, reason);
        // Kept so that dormant can update this finding's workflow as the ladder proceeds.
        if let (Some(id), Some(product_arn)) =
            (str_at(f, path, &["Id"])?, str_at(f, path, &["ProductArn"])?)
        {
            finding.hub_finding = Some(HubFindingRef {
                id: id.to_string(),
                product_arn: product_arn.to_string(),
            });
        }
        return Ok(Outcome::Candidate(finding));
    }
    Ok(Outcome::Skip(no_iam_resource(&label, &seen)))
}

pub(super) fn no_iam_resource(label: &str, seen: &[&str]) -> String {
    match seen.first() {
        Some(t) => format!(
            "{label}: resource type {} is not an IAM user, role or access key",
            quote(t)
        ),
        None => format!("{label}: the finding names no resource"),
    }
}

/// An `AwsIamUser`/`AwsIamRole` resource: the ARN in `Id`, else the name and path in `Details`.
pub(super) fn asff_principal(
    r: &Value,
    path: &str,
    kind: PrincipalKind,
    account: &str,
) -> Parsed<Nominee> {
    if let Some(id) = str_at(r, path, &["Id"])? {
        if id.starts_with("arn:") {
            return Ok(principal_nominee(
                iam_arn(id, &format!("{path}.Id"), kind)?,
                Scope::Whole,
            ));
        }
    }
    let (details, name_field) = match kind {
        PrincipalKind::User => ("AwsIamUser", "UserName"),
        PrincipalKind::Role => ("AwsIamRole", "RoleName"),
    };
    let name = str_at(r, path, &["Details", details, name_field])?.ok_or_else(|| {
        format!("{path} has neither an IAM ARN in Id nor Details.{details}.{name_field}")
    })?;
    let iam_path = str_at(r, path, &["Details", details, "Path"])?;
    principal_by_name(
        account,
        kind,
        iam_path,
        name,
        Scope::Whole,
        &format!("{path}.Details.{details}"),
    )
}

/// An `AwsIamAccessKey` resource. Inner `Err`: a key dormant does not manage (not a user's).
pub(super) fn asff_access_key(
    r: &Value,
    path: &str,
    account: &str,
) -> Parsed<Result<Nominee, String>> {
    // `AwsIamAccessKey` is the ASFF key; the API type is `AwsIamAccessKeyDetails`.
    let details = if present(r, "Details")
        .and_then(|d| present(d, "AwsIamAccessKey"))
        .is_some()
    {
        "AwsIamAccessKey"
    } else {
        "AwsIamAccessKeyDetails"
    };
    let dpath = format!("{path}.Details.{details}");
    let field = |name: &str| str_at(r, path, &["Details", details, name]);
    if let Some(t) = field("PrincipalType")? {
        if !matches!(t, "IAMUser" | "User") {
            return Ok(Err(format!(
                "the access key belongs to a {}, not an IAM user",
                quote(t)
            )));
        }
    }
    let account = account_or(field("AccountId")?, &format!("{dpath}.AccountId"), account)?;
    let user = match field("PrincipalName")? {
        Some(u) => u,
        None => field("UserName")?
            .ok_or_else(|| format!("{dpath} names no user (PrincipalName or UserName)"))?,
    };
    let key = match field("AccessKeyId")? {
        Some(k) => Some(k),
        // Ids seen in the wild: the bare key id, or `AWS::IAM::AccessKey:AKIA…`.
        None => str_at(r, path, &["Id"])?.and_then(|id| id.rsplit([':', '/']).next()),
    };
    if let Some(k) = key.filter(|k| k.starts_with("ASIA")) {
        return Ok(Err(format!(
            "{k} is a temporary (session) key: it expires on its own"
        )));
    }
    let nominee = match key.filter(|k| is_access_key_id(k)) {
        Some(k) => principal_by_name(
            account,
            PrincipalKind::User,
            None,
            user,
            Scope::AccessKey(k.to_string()),
            &dpath,
        )?,
        None => {
            if !is_iam_name(user) {
                return Err(format!("{dpath}: {} is not an IAM user name", quote(user)));
            }
            Nominee::AccessKeyOf {
                account: account.to_string(),
                path: None,
                user: user.to_string(),
            }
        }
    };
    Ok(Ok(nominee))
}

pub(super) fn ocsf(cx: &Cx, f: &Value, path: &str) -> Parsed<Outcome> {
    if !f.is_object() {
        return Err(format!("{path} must be an object, not {}", type_name(f)));
    }
    let control = match str_at(f, path, &["compliance", "control"])? {
        Some(c) => Some(c),
        // `arn:…:security-control/IAM.8/finding/…`
        None => str_at(f, path, &["finding_info", "uid"])?.and_then(|uid| {
            let (_, rest) = uid.split_once("security-control/")?;
            rest.split('/').next()
        }),
    };
    let Some(label) = control else {
        return Ok(Outcome::Skip(
            "not a control finding (no compliance.control)".to_string(),
        ));
    };
    if !SECURITY_CONTROLS.contains(&label) {
        return Ok(scope_skip(label));
    }
    let status = str_at(f, path, &["compliance", "status"])?;
    let status_id = int_at(f, path, &["compliance", "status_id"])?;
    let failed = match status {
        Some(s) => s.eq_ignore_ascii_case("fail") || s.eq_ignore_ascii_case("failed"),
        None => status_id == Some(3),
    };
    if !failed {
        return Ok(Outcome::Skip(format!(
            "{label}: compliance.status is {}: only Fail nominates",
            status.map(quote).unwrap_or_else(|| "missing".to_string())
        )));
    }
    // OCSF finding status: 3 Suppressed, 5 Archived, 6 Deleted (the V2 twins of Workflow.Status
    // SUPPRESSED and RecordState ARCHIVED).
    let finding_status = str_at(f, path, &["status"])?;
    let finding_status_id = int_at(f, path, &["status_id"])?;
    let closed = match finding_status {
        Some(s) => ["suppressed", "archived", "deleted"]
            .iter()
            .any(|c| s.eq_ignore_ascii_case(c)),
        None => matches!(finding_status_id, Some(3 | 5 | 6)),
    };
    if closed {
        return Ok(Outcome::Skip(format!(
            "{label}: the finding is {}",
            finding_status
                .map(quote)
                .unwrap_or_else(|| "suppressed or archived".to_string())
        )));
    }
    let finding_account = match str_at(f, path, &["cloud", "account", "uid"])? {
        Some(a) => account_or(Some(a), &format!("{path}.cloud.account.uid"), cx.account)?,
        None => cx.account,
    };
    let resources = required_array(f, path, "resources")?;
    let mut seen = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let rpath = format!("{path}.resources[{i}]");
        let rtype = required(str_at(r, &rpath, &["type"]), &format!("{rpath}.type"))?;
        let kind = match rtype {
            "AWS::IAM::User" | "AwsIamUser" => Some(PrincipalKind::User),
            "AWS::IAM::Role" | "AwsIamRole" => Some(PrincipalKind::Role),
            "AWS::IAM::AccessKey" | "AwsIamAccessKey" => None,
            other => {
                seen.push(other);
                continue;
            }
        };
        let account = match str_at(r, &rpath, &["owner", "account", "uid"])? {
            Some(a) => account_or(
                Some(a),
                &format!("{rpath}.owner.account.uid"),
                finding_account,
            )?,
            None => finding_account,
        };
        let nominee = match kind {
            Some(kind) => ocsf_principal(r, &rpath, kind, account)?,
            None => ocsf_access_key(r, &rpath, account)?,
        };
        let what = nominee.identity_in(cx.partition).unwrap_or_default();
        let reason = format!("Security Hub {label} failed for {what}");
        return Ok(Outcome::Candidate(cx.finding(nominee, label, reason)));
    }
    Ok(Outcome::Skip(no_iam_resource(label, &seen)))
}

/// OCSF resource: an ARN in `uid` or `uid_alt`, else a unique id or a name in `uid`/`name`.
pub(super) fn ocsf_principal(
    r: &Value,
    path: &str,
    kind: PrincipalKind,
    account: &str,
) -> Parsed<Nominee> {
    let uid = str_at(r, path, &["uid"])?;
    let uid_alt = str_at(r, path, &["uid_alt"])?;
    for (field, value) in [("uid", uid), ("uid_alt", uid_alt)] {
        if let Some(arn) = value.filter(|v| v.starts_with("arn:")) {
            return Ok(principal_nominee(
                iam_arn(arn, &format!("{path}.{field}"), kind)?,
                Scope::Whole,
            ));
        }
    }
    if let Some(id) = uid {
        if let Some(id_kind) = unique_id_kind(id) {
            return match id_kind {
                Some(k) if k == kind => Ok(Nominee::UniqueId {
                    account: account.to_string(),
                    kind,
                    unique_id: id.to_string(),
                }),
                _ => Err(format!(
                    "{path}.uid {id} is not the unique id of a {}",
                    kind.as_str()
                )),
            };
        }
    }
    let name = match str_at(r, path, &["name"])? {
        Some(n) => n,
        None => uid.ok_or_else(|| format!("{path} has no uid, uid_alt or name"))?,
    };
    principal_by_name(account, kind, None, name, Scope::Whole, path)
}

pub(super) fn ocsf_access_key(r: &Value, path: &str, account: &str) -> Parsed<Nominee> {
    let key = [str_at(r, path, &["uid"])?, str_at(r, path, &["uid_alt"])?]
        .into_iter()
        .flatten()
        .find(|k| is_access_key_id(k));
    let mut user = None;
    for p in [
        &["data", "PrincipalName"][..],
        &["data", "UserName"],
        &["data", "AwsIamAccessKey", "PrincipalName"],
    ] {
        if let Some(u) = str_at(r, path, p)? {
            user = Some(u);
            break;
        }
    }
    let user = user.ok_or_else(|| format!("{path} names no user owning the access key"))?;
    match key {
        Some(k) => principal_by_name(
            account,
            PrincipalKind::User,
            None,
            user,
            Scope::AccessKey(k.to_string()),
            path,
        ),
        None if is_iam_name(user) => Ok(Nominee::AccessKeyOf {
            account: account.to_string(),
            path: None,
            user: user.to_string(),
        }),
        None => Err(format!("{path}: {} is not an IAM user name", quote(user))),
    }
}
