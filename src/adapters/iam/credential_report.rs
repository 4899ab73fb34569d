//! The credential report: IAM's CSV of every user's password and key use, parsed by header name.

use super::*;

/// One user's row of the credential report, in domain terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct ReportRow {
    pub(super) created_at: Option<Timestamp>,
    pub(super) password_enabled: bool,
    pub(super) password_last_used: Option<Timestamp>,
    pub(super) password_last_changed: Option<Timestamp>,
    /// Keys in slots 1 and 2, as [`KeyId::Slot`] (the report has no key ids).
    pub(super) access_keys: Vec<AccessKey>,
}

/// Parses the report CSV by header names. Values have no commas except in user names (IAM
/// allows `,` in names), which also show up in the ARN: see [`split_row`].
pub(super) fn parse_credential_report(text: &str) -> PortResult<HashMap<String, ReportRow>> {
    const OP: &str = "GetCredentialReport";
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| PortError::new(ErrorKind::Permanent, OP, "empty credential report"))?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let user_col = col("user").ok_or_else(|| {
        PortError::new(
            ErrorKind::Permanent,
            OP,
            "credential report without a `user` column",
        )
    })?;
    let mut rows = HashMap::new();
    for line in lines {
        let Some(fields) = split_row(line, header.len()) else {
            warn!(
                line,
                "credential report row with an unexpected number of fields; skipped"
            );
            continue;
        };
        let get = |name: &str| col(name).and_then(|i| fields.get(i)).map(String::as_str);
        let date = |name: &str| get(name).and_then(report_date);
        let flag = |name: &str| get(name) == Some("true");
        let mut access_keys = Vec::new();
        for slot in 1..=2u8 {
            // An empty slot has `last_rotated` N/A; an inactive key still has its date.
            if let Some(created_at) = date(&format!("access_key_{slot}_last_rotated")) {
                access_keys.push(AccessKey {
                    id: KeyId::Slot(slot),
                    active: flag(&format!("access_key_{slot}_active")),
                    created_at,
                    last_used_at: date(&format!("access_key_{slot}_last_used_date")),
                });
            }
        }
        let user = fields[user_col].clone();
        rows.insert(
            user,
            ReportRow {
                created_at: date("user_creation_time"),
                password_enabled: flag("password_enabled"),
                password_last_used: date("password_last_used"),
                password_last_changed: date("password_last_changed"),
                access_keys,
            },
        );
    }
    Ok(rows)
}

/// Splits a report row into `columns` fields. A user name with commas (legal in IAM) adds the
/// same commas to the `arn` column; the name never contains `:`, so `,arn:` marks where the ARN
/// starts. `None` if the row cannot be made to fit.
pub(super) fn split_row(line: &str, columns: usize) -> Option<Vec<String>> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() == columns {
        return Some(fields.into_iter().map(str::to_string).collect());
    }
    let extra = fields.len().checked_sub(columns)?;
    if columns < 2 {
        return None;
    }
    let head = fields[..2 + extra].join(",");
    let at = head.find(",arn:")?;
    let mut out = vec![head[..at].to_string(), head[at + 1..].to_string()];
    out.extend(fields[2 + extra..].iter().map(|s| s.to_string()));
    Some(out)
}

/// A report date, or `None` for `N/A`, `no_information`, `not_supported` and anything else
/// that is not a date.
pub(super) fn report_date(value: &str) -> Option<Timestamp> {
    match value {
        "N/A" | "no_information" | "not_supported" | "" => None,
        v => match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                warn!(value = v, error = %e, "unreadable date in the credential report; ignored");
                None
            }
        },
    }
}
