//! Carries out one command: the configuration and dry-run checks, the engines from `wiring`, the
//! command in `app`, its report to `render`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::adapters::clock::Clock;
use crate::adapters::retry::RetryPolicy;
use crate::app::commands::{permissions, policy_document, required_reason, PolicyFor};
use crate::app::event::{handle_event, EventError};
use crate::app::output::BreakerReport;
use crate::domain::IdentityArg;
use crate::error::{Error, Result};
use crate::inbound::eventbridge::{classify_bytes, ClassificationReport, ClassifyRules};
use crate::wiring::{self, assemble, Actor, Assembly};

use super::render::{
    breaker_text, classification_text, command_text, exit_for, fleet_table, history_table,
    permissions_table, print_json_or, run_table, status_table, CsvRow, BREAKER_TRIPPED,
};
use super::{load_config, BreakerAction, Command, EventAction, Output, PolicyArg, ReportFormat};

pub(super) async fn run(cli: super::Cli) -> Result<ExitCode> {
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
        print_json_or(
            out,
            &ClassificationReport::of(&verdict),
            classification_text,
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    if let Command::Permissions { policy } = cli.command {
        match policy {
            Some(who) => {
                let who = match who {
                    PolicyArg::Controller => PolicyFor::Controller,
                    PolicyArg::Operator => PolicyFor::Operator,
                };
                print_json_or(Output::Json, &policy_document(who), |_| String::new())?;
            }
            None => print_json_or(out, &permissions(), permissions_table)?,
        }
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
                        let reason = required_reason(reason)?;
                        let state = engine.breaker().reset(&engine.actor, reason, now).await?;
                        tracing::info!(%account, by = %engine.actor, %reason, "circuit breaker reset");
                        state
                    }
                    BreakerAction::Status => engine.breaker().state().await?,
                };
                states.push(BreakerReport::of(account, &state, now));
            }
            // One account: one object (the common case); several: an array.
            match states.as_slice() {
                [one] => print_json_or(out, one, |b| breaker_text(std::slice::from_ref(b)))?,
                _ => print_json_or(out, &states, |all| breaker_text(all))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init | Command::Permissions { .. } | Command::Event { .. } => {
            Ok(ExitCode::SUCCESS)
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
