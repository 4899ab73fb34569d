//! Tables and text for the typed reports; JSON is the reports serialized as they are.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use crate::app::commands::{CommandReport, PermissionsReport, ReportRow};
use crate::app::fleet::FleetReport;
use crate::app::output::{BreakerReport, HistoryEntry, RunReport, StatusReport};
use crate::domain::Outcome;
use crate::error::{Error, Result};
use crate::inbound::eventbridge::ClassificationReport;

use super::Output;

/// A report row flattened for CSV (no nested values; empty for none).
#[derive(Serialize)]
pub(super) struct CsvRow<'a> {
    account: &'a str,
    identity: &'a str,
    kind: &'a str,
    path: &'a str,
    created_at: &'a str,
    last_used_at: &'a str,
    evidence: &'a str,
    days_inactive: i64,
    stage: &'a str,
    next_step: &'a str,
    next_due_at: &'a str,
    exempt: bool,
    exemption: &'a str,
    exempt_until: &'a str,
    exempt_reason: &'a str,
}

impl<'a> From<&'a ReportRow> for CsvRow<'a> {
    fn from(r: &'a crate::app::commands::ReportRow) -> Self {
        let s = |o: &'a Option<String>| o.as_deref().unwrap_or("");
        CsvRow {
            account: &r.account,
            identity: &r.identity,
            kind: r.kind,
            path: &r.path,
            created_at: &r.created_at,
            last_used_at: s(&r.last_used_at),
            evidence: &r.evidence,
            days_inactive: r.days_inactive,
            stage: r.stage.as_str(),
            next_step: r.next_step.map_or("", |s| s.as_str()),
            next_due_at: s(&r.next_due_at),
            exempt: r.exempt,
            exemption: s(&r.exemption),
            exempt_until: s(&r.exempt_until),
            exempt_reason: s(&r.exempt_reason),
        }
    }
}

pub(super) fn print_json_or<T: Serialize>(
    out: Output,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<()> {
    let text = match out {
        Output::Json => serde_json::to_string_pretty(value)
            .map_err(|e| Error::Usage(format!("cannot render JSON: {e}")))?,
        Output::Table => table(value),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = writeln!(stdout, "{text}");
    Ok(())
}

pub(super) fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    t.set_header(header);
    t
}

pub(super) fn run_table(r: &RunReport) -> String {
    let mut t = table(["identity", "step", "outcome", "reason"]);
    for a in &r.actions {
        t.add_row([
            a.identity.as_str(),
            a.step.as_str(),
            a.outcome.as_str(),
            a.reason.as_str(),
        ]);
    }
    let mut s = if r.actions.is_empty() {
        String::new()
    } else {
        format!("{t}\n")
    };
    s.push_str(&format!(
        "evaluated {} identities, {} actions{}",
        r.evaluated,
        r.actions.len(),
        if r.breaker_tripped {
            "; CIRCUIT BREAKER TRIPPED"
        } else {
            ""
        }
    ));
    s
}

pub(super) fn fleet_table(r: &FleetReport) -> String {
    let mut s = run_table(&r.run);
    let total: u64 = r.api_calls.values().sum();
    let iam: u64 = r
        .api_calls
        .iter()
        .filter(|(k, _)| k.starts_with("iam:"))
        .map(|(_, v)| v)
        .sum();
    s.push_str(&format!("\n{total} AWS requests ({iam} IAM)"));
    if r.accounts.len() > 1 || r.failed_accounts() > 0 {
        for a in &r.accounts {
            match &a.error {
                None => s.push_str(&format!(
                    "\naccount {}: ok, {} evaluated",
                    a.account, a.evaluated
                )),
                Some(e) => s.push_str(&format!("\naccount {}: FAILED: {e}", a.account)),
            }
        }
    }
    s
}

pub(super) fn status_table(rows: &[StatusReport]) -> String {
    if rows.is_empty() {
        return "no tracked identities".to_string();
    }
    let mut t = table([
        "identity",
        "kind",
        "stage",
        "next step",
        "due",
        "exempt",
        "last used",
        "reason",
    ]);
    for r in rows {
        t.add_row([
            r.identity.clone(),
            r.kind.to_string(),
            r.stage.to_string(),
            r.next_step
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.next_due_at.clone().unwrap_or_else(|| "-".into()),
            if r.exempt { "yes".into() } else { "no".into() },
            r.last_used_at.clone().unwrap_or_else(|| "never".into()),
            r.reason.clone(),
        ]);
    }
    t.to_string()
}

/// The exit code of a sweep or tick that failed nothing but was stopped by the circuit breaker.
pub(super) const BREAKER_TRIPPED: u8 = 3;

pub(super) fn exit_for(r: &CommandReport) -> ExitCode {
    if r.outcome == Outcome::Failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub(super) fn command_text(r: &CommandReport) -> String {
    let mut s = format!(
        "{} {}: {} (now {}): {}",
        r.command,
        r.identity,
        r.outcome.as_str(),
        r.stage,
        r.reason
    );
    if let Some(done) = &r.restored {
        for line in done {
            s.push_str(&format!("\n  restored: {line}"));
        }
    }
    if let Some(missing) = &r.not_restored {
        for line in missing {
            s.push_str(&format!("\n  NOT restored: {line}"));
        }
    }
    s
}

pub(super) fn history_table(rows: &[HistoryEntry]) -> String {
    if rows.is_empty() {
        return "no history".to_string();
    }
    let mut t = table(["at", "step", "outcome", "actor", "reason"]);
    for h in rows {
        t.add_row([
            h.at.clone(),
            h.step.clone(),
            h.outcome.as_str().to_string(),
            h.actor.clone(),
            h.reason.clone(),
        ]);
    }
    t.to_string()
}

pub(super) fn classification_text(c: &ClassificationReport) -> String {
    format!(
        "{}: {} ({})",
        c.outcome,
        c.identity.as_deref().unwrap_or("-"),
        c.reason
    )
}

pub(super) fn permissions_table(p: &PermissionsReport) -> String {
    let mut t = table(["step", "role", "user"]);
    for (step, kinds) in &p.steps.0 {
        t.add_row([
            step.to_string(),
            kinds.role.join("\n"),
            kinds.user.join("\n"),
        ]);
    }
    t.to_string()
}

pub(super) fn breaker_text(reports: &[BreakerReport]) -> String {
    reports
        .iter()
        .map(|b| {
            if b.tripped {
                format!(
                    "breaker TRIPPED in {}: {}",
                    b.account,
                    b.cause.as_deref().unwrap_or("")
                )
            } else {
                format!(
                    "breaker ok in {} ({} quarantines in the last 24 h)",
                    b.account, b.quarantines_last_24h
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
