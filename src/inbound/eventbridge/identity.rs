//! Identities in events: unique ids, IAM paths and ARNs, names with their account.

use super::*;

/// `Some(Some(kind))` for `AIDA…`/`AROA…`, `Some(None)` for another IAM unique id prefix, `None`
/// for anything that does not look like a unique id (so it may be a name).
pub(super) fn unique_id_kind(s: &str) -> Option<Option<PrincipalKind>> {
    const OTHERS: [&str; 9] = [
        "ABIA", "ACCA", "AGPA", "AIPA", "AKIA", "ANPA", "ANVA", "APKA", "ASIA",
    ];
    let shaped = (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    match s.get(..4) {
        Some("AIDA") => Some(Some(PrincipalKind::User)),
        Some("AROA") => Some(Some(PrincipalKind::Role)),
        Some(p) if OTHERS.contains(&p) => Some(None),
        _ => None,
    }
}

/// IAM paths: `/`, or `/` + segments of printable ASCII + `/`, at most 512 characters.
pub(super) fn is_iam_path(p: &str) -> bool {
    p.len() <= 512
        && p.starts_with('/')
        && p.ends_with('/')
        && p.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !p.contains("//")
}

/// A role or user ARN of the expected kind, with a valid name and path.
pub(super) fn iam_arn(arn: &str, field: &str, kind: PrincipalKind) -> Parsed<Principal> {
    let p = Principal::from_arn(arn)
        .map_err(|_| format!("{field} {} is not an IAM role or user ARN", quote(arn)))?;
    if p.kind != kind {
        return Err(format!(
            "{field} {} names a {}, expected a {}",
            quote(arn),
            p.kind.as_str(),
            kind.as_str()
        ));
    }
    if !is_iam_name(&p.name) || !is_iam_path(&p.path) {
        return Err(format!(
            "{field} {} has an invalid IAM name or path",
            quote(arn)
        ));
    }
    Ok(p)
}

pub(super) fn principal_nominee(p: Principal, scope: Scope) -> Nominee {
    Nominee::Principal {
        account: p.account,
        kind: p.kind,
        path: Some(p.path),
        name: p.name,
        scope,
    }
}

pub(super) fn principal_by_name(
    account: &str,
    kind: PrincipalKind,
    path: Option<&str>,
    name: &str,
    scope: Scope,
    field: &str,
) -> Parsed<Nominee> {
    if !is_iam_name(name) {
        return Err(format!("{field}: {} is not an IAM name", quote(name)));
    }
    if let Some(p) = path.filter(|p| !is_iam_path(p)) {
        return Err(format!("{field}: {} is not an IAM path", quote(p)));
    }
    Ok(Nominee::Principal {
        account: account.to_string(),
        kind,
        path: path.map(str::to_string),
        name: name.to_string(),
        scope,
    })
}

/// The given account if present (it must be valid), else the fallback.
pub(super) fn account_or<'a>(
    given: Option<&'a str>,
    field: &str,
    fallback: &'a str,
) -> Parsed<&'a str> {
    match given {
        Some(a) if is_account_id(a) => Ok(a),
        Some(a) => Err(format!(
            "{field} must be a 12-digit AWS account id, not {}",
            quote(a)
        )),
        None => Ok(fallback),
    }
}
