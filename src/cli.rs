//! The operator CLI (docs/design.md, 'Operator commands'): argument parsing, AWS wiring and output. `main` only turns
//! [`run`]'s result into an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use crate::adapters::clock::Clock;
use crate::adapters::retry::RetryPolicy;
use crate::app::commands::{permissions, CommandReport};
use crate::app::event::{handle_event, EventError};
use crate::app::fleet::FleetReport;
use crate::app::output::{HistoryEntry, RunReport, StatusReport};
use crate::config::{Config, ConfigError};
use crate::domain::{IdentityArg, Outcome, Stage};
use crate::error::{Error, Result};
use crate::inbound::eventbridge::{classification_json, classify_bytes, ClassifyRules};
use crate::wiring::{self, assemble, Actor, Assembly};

const ABOUT: &str = "dormant finds AWS IAM roles, users, access keys and passwords nobody uses any more \
and takes them out of service in graduated, reversible steps: notice (tags), quarantine (a deny-all \
inline policy), deactivate access keys, delete after a grace period. State, audit trail and \
snapshots live in DynamoDB.\n\nAWS credentials and region come from the usual SDK sources; \
AWS_ENDPOINT_URL points every client at an emulator.";

#[derive(Debug, Parser)]
#[command(name = "dormant", version, about = ABOUT)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./dormant.toml if it exists, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Fix the clock (RFC 3339), for tests and demos.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    /// Decide and record what would happen; change nothing in IAM.
    #[arg(long, global = true)]
    pub dry_run: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the DynamoDB table and its indexes (local/dev; the CDK app does this in AWS). Idempotent.
    Init,
    /// Evaluate every role and user in the account and take each step that is due.
    Sweep,
    /// Take only the steps that are due (reads the due index, not the whole account).
    Tick,
    /// Tracked identities, optionally of one stage.
    List {
        /// clean, noticed, quarantined, keys_deactivated, pending_delete, deleted, released or exempt.
        #[arg(long, value_parser = parse_stage)]
        stage: Option<Stage>,
    },
    /// Stage, next step and when, exemption and last-used evidence of one identity.
    Status {
        /// An ARN, role/NAME, user/NAME, user/NAME/key/AKIA… or user/NAME/password.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
    },
    /// The audit trail of one identity.
    History {
        /// An ARN, role/NAME, user/NAME, user/NAME/key/AKIA… or user/NAME/password.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
    },
    /// Release an identity: reverse exactly what dormant changed (its policy, the keys it turned
    /// off, its tags), record who and why, and start the cool-off.
    Undo {
        /// An ARN, role/NAME, user/NAME, user/NAME/key/AKIA… or user/NAME/password.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Recreate a role or user dormant deleted, from its snapshot. Access keys and passwords
    /// cannot be recreated; the output lists them.
    Restore {
        /// An ARN, role/NAME or user/NAME.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
        /// Why (recorded in the audit trail with who ran the command).
        #[arg(long)]
        reason: String,
    },
    /// Exempt an identity until a date (writes the dormant:exempt tags; releases it if needed).
    Exempt {
        /// An ARN, role/NAME or user/NAME.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
        /// Last day of the exemption (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        until: chrono::NaiveDate,
        /// Why (stored in the dormant:exempt-reason tag).
        #[arg(long)]
        reason: String,
    },
    /// Approve a pending deletion (with `ladder.delete = "approval"`); the next tick deletes.
    Approve {
        /// An ARN, role/NAME or user/NAME.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
        /// Why (recorded in the audit trail with who approved).
        #[arg(long)]
        reason: String,
    },
    /// Process one EventBridge event (a file, or - for stdin) exactly as the Lambda does.
    HandleEvent {
        /// The event JSON, or - to read it from stdin.
        file: PathBuf,
    },
    /// Offline tools for EventBridge events.
    Event {
        #[command(subcommand)]
        action: EventAction,
    },
    /// Compliance report: every role and user in the account with kind, path, creation, last use
    /// and its evidence, days inactive, stage, next step and when, and exemption. Rows stream
    /// to stdout as they are produced.
    Report {
        /// csv or json (one JSON array).
        #[arg(long, value_enum, default_value_t = ReportFormat::Csv)]
        format: ReportFormat,
    },
    /// The IAM actions each step needs (the CDK role is checked against this).
    Permissions,
    /// The circuit breaker: see whether it is tripped, or reset it.
    Breaker {
        #[command(subcommand)]
        action: BreakerAction,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum EventAction {
    /// Say whether an event nominates an identity, without calling AWS (no credentials needed):
    /// {"outcome": "candidate|ignored|invalid", "source", "identity", "finding", "reason"}.
    Classify {
        /// The event JSON, or - to read it from stdin.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum BreakerAction {
    /// Whether the breaker is tripped, why, and the quarantine count in the last 24 hours.
    Status,
    /// Re-enable steps after a trip.
    Reset {
        /// Why (kept with the breaker: who reset it, when and why).
        #[arg(long)]
        reason: String,
    },
}

fn parse_now(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("'{s}' is not an RFC 3339 time (e.g. 2026-01-31T00:00:00Z): {e}"))
}

fn parse_date(s: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("'{s}' is not a date (YYYY-MM-DD): {e}"))
}

fn parse_stage(s: &str) -> std::result::Result<Stage, String> {
    s.parse()
}

fn parse_identity(s: &str) -> std::result::Result<IdentityArg, String> {
    s.parse()
        .map_err(|e: crate::domain::subject::SubjectParseError| e.0)
}

/// Loads the configuration: the named file, or ./dormant.toml when present, or the defaults.
pub fn load_config(path: Option<&PathBuf>) -> std::result::Result<Config, ConfigError> {
    match path {
        Some(p) => Config::from_toml_file(p),
        None => {
            let default = PathBuf::from("dormant.toml");
            if default.exists() {
                Config::from_toml_file(&default)
            } else {
                Config::from_toml("")
            }
        }
    }
}

/// Parses, runs and reports. Errors are printed here; the exit code follows docs/design.md, 'Operator commands'.
pub async fn main_with(cli: Cli) -> ExitCode {
    let output = cli.output;
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let hint = hint_for(&e);
            eprintln!("error: {e}");
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            if matches!(output, Output::Json) {
                // Scripts reading stdout get the error too, as one JSON object.
                let doc = serde_json::json!({
                    "error": e.to_string(),
                    "hint": hint,
                    "exit_code": e.exit_code(),
                });
                println!("{doc}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// What to do about the common AWS errors, in words (the error itself stays as AWS said it).
fn hint_for(e: &Error) -> Option<&'static str> {
    let Error::Port(port) = e else { return None };
    let text = port.message.as_str();
    if text.contains("ResourceNotFoundException") {
        Some("dormant's table does not exist in this account and region: run `dormant init`, or set `table` in the configuration")
    } else if text.contains("AccessDenied") {
        Some("the identity dormant runs as lacks the action named above: `dormant permissions` lists what each step needs")
    } else if text.contains("Throttling") || text.contains("Rate exceeded") {
        Some("AWS throttled the call past dormant's retries: run again later, or lower max_concurrent_identities")
    } else if text.to_ascii_lowercase().contains("credentials") {
        Some("no usable AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    } else if text.to_ascii_lowercase().contains("region") {
        Some("no AWS region: set AWS_REGION (or a region in the profile)")
    } else {
        None
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = load_config(cli.config.as_ref())?;
    if cli.dry_run || config.policy.dry_run {
        // Commands that only change state have nothing to preview: refuse rather than act.
        let refused = match &cli.command {
            Command::Init => Some("init creates the table"),
            Command::Breaker {
                action: BreakerAction::Reset { .. },
            } => Some("breaker reset re-enables steps"),
            _ => None,
        };
        if let Some(what) = refused {
            return Err(Error::Usage(format!(
                "dry run (--dry-run or dry_run = true): {what}, which a dry run cannot do \
                 without changing state; run it without the dry run (`dormant breaker status` \
                 shows the breaker)"
            )));
        }
        config.policy.dry_run = true;
    }
    let clock = cli.now.map(Clock::fixed).unwrap_or_else(Clock::system);
    let out = cli.output;

    if let Command::Event {
        action: EventAction::Classify { file },
    } = &cli.command
    {
        let bytes = read_input(file)?;
        let rules = ClassifyRules::from_config(&config);
        let verdict = classify_bytes(&bytes, &rules);
        let json = classification_json(&verdict);
        print_json_or(out, &json, |v| {
            format!(
                "{}: {} ({})",
                v["outcome"].as_str().unwrap_or(""),
                v["identity"].as_str().unwrap_or("-"),
                v["reason"].as_str().unwrap_or("")
            )
        })?;
        return Ok(ExitCode::SUCCESS);
    }

    if let Command::Permissions = cli.command {
        print_json_or(out, &permissions(), |v| {
            let mut t = table(["step", "role", "user"]);
            if let Some(steps) = v["steps"].as_object() {
                for (step, kinds) in steps {
                    let join = |k: &str| {
                        kinds[k]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str())
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default()
                    };
                    t.add_row([step.clone(), join("role"), join("user")]);
                }
            }
            t.to_string()
        })?;
        return Ok(ExitCode::SUCCESS);
    }

    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let retry = RetryPolicy::default();

    if let Command::Init = cli.command {
        let created = wiring::create_table(&config, &aws, retry).await?;
        let msg = if created { "created" } else { "already exists" };
        print_json_or(
            out,
            &serde_json::json!({"table": config.table, "created": created}),
            |_| format!("table {} {msg}", config.table),
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    let Assembly {
        fleet, api_calls, ..
    } = assemble(&config, &aws, Actor::Caller, retry).await?;
    let now = clock.now();
    // An ARN names its account; `role/NAME` needs a single configured account.
    let pick = |identity: &IdentityArg| match identity {
        IdentityArg::Subject(s) => fleet.engine(&s.principal.account),
        IdentityArg::Name { .. } => fleet.single(),
    };
    match cli.command {
        Command::Sweep | Command::Tick => {
            let mut report = if matches!(cli.command, Command::Sweep) {
                fleet.sweep(now).await
            } else {
                fleet.tick(now).await
            };
            report.api_calls = api_calls.snapshot();
            print_json_or(out, &report, fleet_table)?;
            Ok(if report.run.failed() > 0 || report.failed_accounts() > 0 {
                ExitCode::from(1)
            } else if report.run.breaker_tripped {
                // Automation must notice that steps were stopped, not only that none failed.
                ExitCode::from(BREAKER_TRIPPED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::List { stage } => {
            let mut rows = Vec::new();
            for engine in &fleet.engines {
                rows.extend(engine.list(stage).await?);
            }
            print_json_or(out, &rows, |rows| status_table(rows))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { identity } => {
            let s = pick(&identity)?.status(&identity, now).await?;
            print_json_or(out, &s, |s| status_table(std::slice::from_ref(s)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::History { identity } => {
            let h = pick(&identity)?.history(&identity).await?;
            print_json_or(out, &h, |h| history_table(h))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { format } => {
            let mut stdout = std::io::stdout().lock();
            let rows = match format {
                ReportFormat::Csv => {
                    let mut w = csv::Writer::from_writer(&mut stdout);
                    let mut n = 0;
                    for engine in &fleet.engines {
                        n += engine
                            .compliance_report(now, |row| {
                                w.serialize(CsvRow::from(&row)).map_err(|e| {
                                    Error::Usage(format!("cannot write the report: {e}"))
                                })
                            })
                            .await?;
                    }
                    w.flush()
                        .map_err(|e| Error::Usage(format!("cannot write the report: {e}")))?;
                    n
                }
                ReportFormat::Json => {
                    let mut first = true;
                    let _ = write!(stdout, "[");
                    let mut n = 0;
                    for engine in &fleet.engines {
                        n += engine
                            .compliance_report(now, |row| {
                                let text = serde_json::to_string(&row).map_err(|e| {
                                    Error::Usage(format!("cannot write the report: {e}"))
                                })?;
                                let sep = if first { "\n" } else { ",\n" };
                                first = false;
                                let _ = write!(stdout, "{sep}{text}");
                                Ok(())
                            })
                            .await?;
                    }
                    let _ = writeln!(stdout, "\n]");
                    n
                }
            };
            tracing::info!(rows, "report written");
            Ok(ExitCode::SUCCESS)
        }
        Command::HandleEvent { file } => {
            let bytes = read_input(&file)?;
            let event: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Usage(format!("{}: not JSON: {e}", file.display())))?;
            let rules = ClassifyRules::from_config(&config);
            let report = handle_event(&event, &fleet, &rules, None, now)
                .await
                .map_err(|e| match e {
                    EventError::Failed(e) => e,
                    malformed => Error::Rejected(malformed.to_string()),
                })?;
            print_json_or(out, &report, |r| {
                let mut text = run_table(&r.run);
                if let Some(why) = &r.ignored {
                    text.push_str(&format!("\nignored: {why}"));
                }
                if r.duplicate {
                    text.push_str("\nduplicate delivery: already processed");
                }
                text
            })?;
            Ok(if report.run.failed() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Undo { identity, reason } => {
            let r = pick(&identity)?.undo(&identity, &reason, now).await?;
            print_json_or(out, &r, command_text)?;
            Ok(exit_for(&r))
        }
        Command::Restore { identity, reason } => {
            let r = pick(&identity)?.restore(&identity, &reason, now).await?;
            print_json_or(out, &r, command_text)?;
            Ok(exit_for(&r))
        }
        Command::Exempt {
            identity,
            until,
            reason,
        } => {
            let r = pick(&identity)?
                .exempt(&identity, until, &reason, now)
                .await?;
            print_json_or(out, &r, command_text)?;
            Ok(exit_for(&r))
        }
        Command::Approve { identity, reason } => {
            let r = pick(&identity)?.approve(&identity, &reason, now).await?;
            print_json_or(out, &r, command_text)?;
            Ok(exit_for(&r))
        }
        Command::Breaker { action } => {
            let mut states = Vec::new();
            for engine in &fleet.engines {
                let account = engine.account();
                let state = match &action {
                    BreakerAction::Reset { reason } => {
                        let reason = crate::app::commands::required_reason(reason)?;
                        let state = engine.breaker().reset(&engine.actor, reason, now).await?;
                        tracing::info!(%account, by = %engine.actor, %reason, "circuit breaker reset");
                        state
                    }
                    BreakerAction::Status => engine.breaker().state().await?,
                };
                states.push(serde_json::json!({
                    "account": account,
                    "tripped": state.tripped,
                    "tripped_at": state.tripped_at.map(crate::domain::time::fmt_time),
                    "cause": state.cause,
                    "quarantines_last_24h": state.quarantines_within_day(now),
                    "last_reset": state.last_reset,
                }));
            }
            // One account: one object (the common case); several: an array.
            let v = match states.as_slice() {
                [one] => one.clone(),
                _ => serde_json::Value::Array(states.clone()),
            };
            print_json_or(out, &v, |_| {
                states
                    .iter()
                    .map(|v| {
                        if v["tripped"] == true {
                            format!(
                                "breaker TRIPPED in {}: {}",
                                v["account"].as_str().unwrap_or(""),
                                v["cause"].as_str().unwrap_or("")
                            )
                        } else {
                            format!(
                                "breaker ok in {} ({} quarantines in the last 24 h)",
                                v["account"].as_str().unwrap_or(""),
                                v["quarantines_last_24h"]
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init | Command::Permissions | Command::Event { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// A report row flattened for CSV (no nested values; empty for none).
#[derive(Serialize)]
struct CsvRow<'a> {
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

impl<'a> From<&'a crate::app::commands::ReportRow> for CsvRow<'a> {
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

/// A file's bytes, or stdin's for `-`.
fn read_input(path: &PathBuf) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

fn print_json_or<T: Serialize>(
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

fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    t.set_header(header);
    t
}

fn run_table(r: &RunReport) -> String {
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

fn fleet_table(r: &FleetReport) -> String {
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

fn status_table(rows: &[StatusReport]) -> String {
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
const BREAKER_TRIPPED: u8 = 3;

fn exit_for(r: &CommandReport) -> ExitCode {
    if r.outcome == Outcome::Failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn command_text(r: &CommandReport) -> String {
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

fn history_table(rows: &[HistoryEntry]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
