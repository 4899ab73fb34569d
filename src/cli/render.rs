//! Tables and text for the typed reports; JSON is the reports serialized as they are.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Color, Table};
use serde::Serialize;

use crate::app::commands::{CommandReport, PermissionsReport, PlanRow, ReportRow};
use crate::app::fleet::FleetReport;
use crate::app::output::{BreakerReport, HistoryEntry, RunReport, StatusReport};
use crate::domain::{Outcome, Stage, Step, Subject};
use crate::error::{Error, Result};
use crate::inbound::eventbridge::ClassificationReport;

use super::Output;

/// How tables show identities and stages.
#[derive(Debug, Clone, Copy)]
pub(super) struct View {
    /// Full ARNs (`--wide`) instead of `role/NAME` and the account above the table.
    pub wide: bool,
    /// Stages in colour: stdout is a terminal and `NO_COLOR` is not set.
    pub colour: bool,
}

impl View {
    pub(super) fn new(wide: bool) -> Self {
        use std::io::IsTerminal;
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        View { wide, colour }
    }

    /// `role/NAME` (or `role/PATH/NAME`) for a subject id, or the id itself with `--wide`.
    pub(super) fn name(&self, id: &str) -> String {
        match Subject::from_id(id) {
            Ok(s) if !self.wide => s.short(),
            _ => id.to_string(),
        }
    }

    fn stage(&self, stage: Stage) -> Cell {
        let cell = Cell::new(stage.as_str());
        if !self.colour {
            return cell;
        }
        match stage {
            Stage::Clean => cell,
            Stage::Noticed => cell.fg(Color::Yellow),
            Stage::Quarantined | Stage::KeysDeactivated => cell.fg(Color::Magenta),
            Stage::PendingDelete | Stage::Deleted => cell.fg(Color::Red),
            Stage::Released => cell.fg(Color::Green),
            Stage::Exempt => cell.fg(Color::Cyan),
        }
    }
}

/// The account of each subject id (none for ids that do not parse).
fn accounts<'a>(ids: impl Iterator<Item = &'a str>) -> std::collections::BTreeSet<String> {
    ids.filter_map(|id| Subject::from_id(id).ok())
        .map(|s| s.principal.account)
        .collect()
}

fn account_of(id: &str) -> String {
    Subject::from_id(id)
        .map(|s| s.principal.account)
        .unwrap_or_default()
}

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
    credential_id: &'a str,
    active: &'a str,
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
            credential_id: s(&r.credential_id),
            active: match r.active {
                Some(true) => "true",
                Some(false) => "false",
                None => "",
            },
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

pub(super) fn table(header: impl Into<comfy_table::Row>) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    t.set_header(header);
    t
}

pub(super) fn run_table(r: &RunReport, view: View) -> String {
    let several = !view.wide && accounts(r.actions.iter().map(|a| a.identity.as_str())).len() > 1;
    let mut t = if several {
        table(["account", "identity", "step", "outcome", "reason"])
    } else {
        table(["identity", "step", "outcome", "reason"])
    };
    for a in &r.actions {
        let mut row = vec![
            view.name(&a.identity),
            a.step.as_str().to_string(),
            a.outcome.as_str().to_string(),
            a.reason.clone(),
        ];
        if several {
            row.insert(0, account_of(&a.identity));
        }
        t.add_row(row);
    }
    let mut s = if r.actions.is_empty() {
        String::new()
    } else {
        format!("{t}\n")
    };
    s.push_str(&run_summary(r));
    s
}

/// `evaluated 2 identities: 1 step taken, 1 skipped`: steps taken apart from skipped ones.
pub(super) fn run_summary(r: &RunReport) -> String {
    let count = |o: Outcome| r.actions.iter().filter(|a| a.outcome == o).count();
    let taken = count(Outcome::Done) + count(Outcome::FallbackStarted);
    let mut parts = Vec::new();
    if taken > 0 {
        parts.push(format!("{} taken", plural(taken, "step", "steps")));
    }
    let planned = count(Outcome::DryRun);
    if planned > 0 {
        parts.push(format!(
            "{} would be taken (dry run)",
            plural(planned, "step", "steps")
        ));
    }
    for (outcome, word) in [(Outcome::Skipped, "skipped"), (Outcome::Failed, "failed")] {
        let n = count(outcome);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    if parts.is_empty() {
        parts.push("no step due".to_string());
    }
    let mut s = format!(
        "evaluated {}: {}",
        plural(r.evaluated, "identity", "identities"),
        parts.join(", ")
    );
    if r.breaker_tripped {
        s.push_str("; CIRCUIT BREAKER TRIPPED (`dormant breaker status` says why)");
    }
    if r.unfinished > 0 {
        s.push_str(&format!(
            "; stopped at the deadline with {} left: the next sweep or tick continues",
            plural(r.unfinished, "identity", "identities")
        ));
    }
    s
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(super) fn fleet_table(r: &FleetReport, view: View) -> String {
    let mut s = run_table(&r.run, view);
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

/// `list` and `status`; `empty` is what to say when there is no row.
pub(super) fn status_table(rows: &[StatusReport], view: View, empty: &str) -> String {
    if rows.is_empty() {
        return empty.to_string();
    }
    let all = accounts(rows.iter().map(|r| r.identity.as_str()));
    let column = !view.wide && all.len() > 1;
    let mut header = vec![
        "identity",
        "kind",
        "stage",
        "next step",
        "due",
        "exempt",
        "last used",
        "reason",
    ];
    if column {
        header.insert(0, "account");
    }
    let mut t = table(header);
    for r in rows {
        let mut row = vec![
            Cell::new(view.name(&r.identity)),
            Cell::new(r.kind),
            view.stage(r.stage),
            Cell::new(r.next_step.map_or_else(|| "-".into(), |s| s.to_string())),
            Cell::new(r.next_due_at.as_deref().unwrap_or("-")),
            Cell::new(if r.exempt { "yes" } else { "no" }),
            Cell::new(r.last_used_at.as_deref().unwrap_or("never")),
            Cell::new(&r.reason),
        ];
        if column {
            row.insert(0, Cell::new(account_of(&r.identity)));
        }
        t.add_row(row);
    }
    match all.iter().next() {
        Some(account) if !view.wide && !column => format!("account {account}\n{t}"),
        _ => t.to_string(),
    }
}

/// `plan`: the calendar, then one line counting the steps.
pub(super) fn plan_table(rows: &[PlanRow], view: View, days: i64) -> String {
    let all = accounts(rows.iter().map(|r| r.identity.as_str()));
    let column = !view.wide && all.len() > 1;
    let mut header = vec!["date", "identity", "step", "reason"];
    if column {
        header.insert(0, "account");
    }
    let mut t = table(header);
    for r in rows {
        let mut row = vec![
            r.due
                .map_or_else(|| "-".to_string(), |t| t.format("%Y-%m-%d").to_string()),
            view.name(&r.identity),
            r.step.map_or_else(|| "-".to_string(), |s| s.to_string()),
            r.reason.clone(),
        ];
        if column {
            row.insert(0, account_of(&r.identity));
        }
        t.add_row(row);
    }
    let count = |step: Step| rows.iter().filter(|r| r.step == Some(step)).count();
    let mut parts = vec![
        plural(count(Step::Notice), "notice", "notices"),
        plural(count(Step::Quarantine), "quarantine", "quarantines"),
    ];
    for (step, one, many) in [
        (
            Step::DeactivateKeys,
            "key deactivation",
            "key deactivations",
        ),
        (
            Step::RequestApproval,
            "approval request",
            "approval requests",
        ),
    ] {
        if count(step) > 0 {
            parts.push(plural(count(step), one, many));
        }
    }
    parts.push(plural(count(Step::Delete), "deletion", "deletions"));
    if count(Step::Release) > 0 {
        parts.push(plural(count(Step::Release), "release", "releases"));
    }
    let summary = format!(
        "{} in the next {}",
        parts.join(", "),
        plural(days as usize, "day", "days")
    );
    if rows.is_empty() {
        return format!("no identities\n{summary}");
    }
    match all.iter().next() {
        Some(account) if !view.wide && !column => format!("account {account}\n{t}\n{summary}"),
        _ => format!("{t}\n{summary}"),
    }
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

pub(super) fn command_text(r: &CommandReport, view: View) -> String {
    let mut s = format!(
        "{} {}: {} (now {}): {}",
        r.command,
        view.name(&r.identity),
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

pub(super) fn dead_letter_table(rows: &[crate::ports::DeadLetter]) -> String {
    if rows.is_empty() {
        return "no dead-lettered messages".to_string();
    }
    let mut t = table([
        "dead at",
        "recipient",
        "identity",
        "step",
        "attempts",
        "last error",
    ]);
    for d in rows {
        t.add_row([
            d.dead_at.clone(),
            d.entry.recipient.to_string(),
            d.entry.item.identity.clone(),
            d.entry.item.step.to_string(),
            d.attempts.to_string(),
            d.last_error.clone(),
        ]);
    }
    t.to_string()
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

/// The same numbers as the JSON, and when the 24-hour window of quarantines clears.
pub(super) fn breaker_text(reports: &[BreakerReport]) -> String {
    reports
        .iter()
        .map(|b| {
            let n = b.quarantines_last_24h;
            let window = match &b.window_clears_at {
                Some(at) if n > 0 => format!("; the window clears at {at}"),
                _ => String::new(),
            };
            let count = format!(
                "{} in the last 24 h{window}",
                plural(n as usize, "quarantine", "quarantines")
            );
            let mut s = if b.tripped {
                format!(
                    "breaker TRIPPED in {}{}: {}\n  {count}; steps stay stopped until \
                     `dormant breaker reset --reason …`",
                    b.account,
                    b.tripped_at
                        .as_deref()
                        .map(|t| format!(" at {t}"))
                        .unwrap_or_default(),
                    b.cause.as_deref().unwrap_or("no cause recorded")
                )
            } else {
                format!("breaker ok in {} ({count})", b.account)
            };
            if let Some(r) = &b.last_reset {
                s.push_str(&format!(
                    "\n  last reset by {} at {}: {}",
                    r.by,
                    crate::domain::time::fmt_time(r.at),
                    r.reason
                ));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}
