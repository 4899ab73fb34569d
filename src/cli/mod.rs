//! The operator CLI (docs/design.md, 'Operator commands'): this file defines the arguments and
//! turns a run's result into an exit code; `run.rs` carries out a command through `wiring` and
//! `app`, and `render.rs` turns the typed reports into tables and text.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError};
use crate::domain::{IdentityArg, Stage};
use crate::error::Error;

mod confirm;
mod first_run;
mod progress;
mod render;
mod run;

use run::run;

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

    /// Output format [default: table]. `--output json` also makes `report` print JSON.
    #[arg(long, global = true, value_enum)]
    pub output: Option<Output>,

    /// Fix the clock (RFC 3339), for tests and demos.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    /// sweep, tick: stop starting identities when the time left would not finish them (e.g.
    /// 90s, 14m, 1h); the run records where it stopped and the next sweep or tick continues.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<std::time::Duration>,

    /// Preview: decide and report what would happen, and write nothing anywhere (IAM, the
    /// table, events). Commands that only change state (init, breaker reset) refuse it.
    /// `dry_run = true` in the configuration differs: it also records its notes in the table.
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Answer yes to confirmations (approve, restore, breaker reset, a tick that deletes, the
    /// first real sweep). Needed when there is no terminal to ask on.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Full ARNs in tables instead of role/NAME (JSON always has them).
    #[arg(long, global = true)]
    pub wide: bool,

    /// More logs on stderr: -v info, -vv debug (DORMANT_LOG overrides both).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

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
    /// Create the DynamoDB table and its indexes, dormant's quarantine policy
    /// (/dormant/DormantQuarantineDenyAll) in the caller's account (local/dev; the CDK stacks do
    /// both in AWS), and a starter ./dormant.toml (dry_run = true) when there is none. Idempotent.
    Init,
    /// Evaluate every role and user in the account and take each step that is due.
    Sweep,
    /// Take only the steps that are due (reads the due index, not the whole account).
    Tick,
    /// Tracked identities, optionally filtered (filters combine).
    List {
        /// clean, noticed, quarantined, keys_deactivated, pending_delete, deleted, released or exempt.
        #[arg(long, value_parser = parse_stage)]
        stage: Option<Stage>,
        /// Only roles, or only users (with their access keys and passwords).
        #[arg(long, value_enum)]
        kind: Option<KindFilter>,
        /// Only this account (12 digits).
        #[arg(long, value_name = "ID", value_parser = parse_account)]
        account: Option<String>,
        /// Only identities with a step due before this time (RFC 3339, or a date: its midnight UTC).
        #[arg(long, value_name = "RFC3339|DATE", value_parser = parse_time_or_date)]
        due_before: Option<DateTime<Utc>>,
        /// Only names matching this glob (`*`, `?`, `[…]`; matched against NAME, and against
        /// PATH/NAME when it contains a /).
        #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
        name: Option<globset::GlobMatcher>,
    },
    /// Stage, next step and when, exemption and last-used evidence of one identity.
    Status {
        /// An ARN, role/NAME, user/NAME, user/NAME/key/AKIA… or user/NAME/password.
        #[arg(value_parser = parse_identity)]
        identity: IdentityArg,
    },
    /// Owner messages dormant gave up on (`[notify] max_attempts` failed sends, or refused for
    /// good): recipient, identity, step, attempts and last error. Kept 30 days; never resent.
    DeadLetters,
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
        /// csv or json (one JSON array) [default: csv, or json with --output json].
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
    },
    /// The calendar of the ladder (the `terraform plan` of dormant): every step that would be
    /// taken within the next N days if nothing changes (nobody uses, exempts or approves
    /// anything), with its date and reason, and why nothing happens to the rest. Read from one
    /// bulk listing of IAM and the table; changes nothing. Assumes the scheduled runs happen;
    /// the circuit breaker is not simulated (a trip would stop access-cutting steps).
    Plan {
        /// How far ahead to look, in days (1 to 3650).
        #[arg(long, value_name = "N", default_value_t = 30,
              value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
    },
    /// Serve the owners' answer page (docs/design.md, 'Answers') for local runs and the demo:
    /// the links of `[answers] base_url` open here. Loopback only unless allowed.
    Serve {
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Listen on a non-loopback address too (put TLS in front of it).
        #[arg(long)]
        allow_non_loopback: bool,
    },
    /// The AWS actions dormant needs: IAM per step, every service the controller calls, and the
    /// operator commands (the CDK roles are built from this).
    Permissions {
        /// Print an IAM policy document granting them instead.
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
    },
    /// The configuration as dormant reads it (the file, every key it leaves out at its default),
    /// as TOML or, with `--output json`, as the JSON the Lambda takes in DORMANT_CONFIG.
    Config {
        /// The built-in defaults instead (no file is read).
        #[arg(long)]
        defaults: bool,
    },
    /// The circuit breaker: see whether it is tripped, or reset it.
    Breaker {
        #[command(subcommand)]
        action: BreakerAction,
    },
    /// Print a shell completion script (e.g. `dormant completions bash > /etc/bash_completion.d/dormant`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; e.g. `dormant man | man -l -`).
    Man,
}

/// `list --kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindFilter {
    Role,
    User,
}

/// Whose policy `permissions --policy` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// The controller's (the Lambda's) actions.
    Controller,
    /// The controller's plus those of `init` and `restore`.
    Operator,
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

/// `500ms`, `90s`, `14m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && scale.is_finite() && (n * scale) < 1e9 => {
            Ok(std::time::Duration::from_secs_f64(n * scale))
        }
        _ => Err(format!(
            "'{s}' is not a duration: a positive number with ms, s, m or h (e.g. 90s, 14m)"
        )),
    }
}

fn parse_date(s: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("'{s}' is not a date (YYYY-MM-DD): {e}"))
}

fn parse_stage(s: &str) -> std::result::Result<Stage, String> {
    s.parse()
}

fn parse_account(s: &str) -> std::result::Result<String, String> {
    if crate::domain::subject::is_account_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not an account id (12 digits)"))
    }
}

fn parse_time_or_date(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("'{s}' is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

fn parse_glob(s: &str) -> std::result::Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(s)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("'{s}' is not a glob: {e}"))
}

fn parse_identity(s: &str) -> std::result::Result<IdentityArg, String> {
    s.parse()
        .map_err(|e: crate::domain::subject::SubjectParseError| e.0)
}

impl Cli {
    /// `--output`, table when not given.
    pub fn output(&self) -> Output {
        self.output.unwrap_or(Output::Table)
    }
}

/// Loads the configuration: the named file, or ./dormant.toml when present, or the defaults.
pub fn load_config(path: Option<&PathBuf>) -> std::result::Result<Config, ConfigError> {
    Config::from_toml(&config_text(path)?)
}

/// The text of the configuration file [`load_config`] reads (empty when there is none).
pub fn config_text(path: Option<&PathBuf>) -> std::result::Result<String, ConfigError> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| ConfigError {
            field: String::new(),
            message: format!("cannot read {}: {e}", p.display()),
        })
    };
    match path {
        Some(p) => read(p),
        None => {
            let default = PathBuf::from("dormant.toml");
            if default.exists() {
                read(&default)
            } else {
                Ok(String::new())
            }
        }
    }
}

/// Parses, runs and reports. Errors are printed here; the exit code follows docs/design.md, 'Operator commands'.
pub async fn main_with(cli: Cli) -> ExitCode {
    let output = cli.output();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
