//! Carries out one command: the configuration and dry-run checks, the engines from `wiring`, the
//! command in `app`, its report to `render`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::adapters::clock::Clock;
use crate::adapters::retry::RetryPolicy;
use crate::app::commands::{calendar, permissions, policy_document, required_reason, PolicyFor};
use crate::app::event::{handle_event, EventError};
use crate::app::output::BreakerReport;
use crate::app::Mode;
use crate::domain::IdentityArg;
use crate::error::{Error, Result};
use crate::inbound::eventbridge::{classify_bytes, ClassificationReport, ClassifyRules};
use crate::wiring::{self, Actor, Assembly, EngineFactory};

use super::confirm::Confirm;
use super::first_run::{write_starter_config, LocalDryRuns};
use super::progress::Bar;
use super::render::{
    breaker_text, classification_text, command_text, dead_letter_table, exit_for, fleet_table,
    history_table, permissions_table, plan_table, print_json_or, run_table, status_table, CsvRow,
    View, BREAKER_TRIPPED,
};
use super::{
    config_text, load_config, BreakerAction, Command, EventAction, KindFilter, Output, PolicyArg,
    ReportFormat,
};
use crate::app::commands::ListFilter;
use crate::app::deadline::{self, Deadline};
use crate::app::progress;
use crate::config::{Config, RawConfig};
use crate::domain::PrincipalKind;

pub(super) async fn run(cli: super::Cli) -> Result<ExitCode> {
    // Neither needs a configuration: a broken one must not stop them. Both are rendered in
    // memory first: clap_complete panics on a closed pipe (`| head`).
    let mut text = Vec::new();
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <super::Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "dormant", &mut text);
        }
        Command::Man => {
            let cmd = <super::Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut text)
                .map_err(|e| Error::Usage(format!("cannot write the man page: {e}")))?;
        }
        _ => {}
    }
    if !text.is_empty() {
        let _ = std::io::stdout().lock().write_all(&text);
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Config { defaults } = cli.command {
        // The defaults need no file, and a broken one must not stop them.
        let raw = if defaults {
            RawConfig::default()
        } else {
            let text = config_text(cli.config.as_ref())?;
            // Checked as every command checks it; shown as written, defaults filled in.
            Config::from_toml(&text)?;
            RawConfig::from_toml(&text)?
        };
        let toml = toml::to_string(&raw)
            .map_err(|e| Error::Usage(format!("cannot render the configuration: {e}")))?;
        print_json_or(cli.output(), &raw, |_| toml.trim_end().to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let report_format = match &cli.command {
        Command::Report { format } => Some(report_format(*format, cli.output)?),
        _ => None,
    };
    let config = load_config(cli.config.as_ref())?;
    // `--dry-run` previews and writes nothing; `dry_run = true` in the file observes (see Mode).
    let mode = if cli.dry_run {
        Mode::Preview
    } else {
        Mode::of(&config.policy)
    };
    if let Some(why) = refusal(&cli.command, mode) {
        return Err(Error::Usage(why.to_string()));
    }
    // From the start: set-up (configuration, AssumeRole) counts against it too.
    let deadline = cli.deadline.map(Deadline::after);
    let clock = cli.now.map(Clock::fixed).unwrap_or_else(Clock::system);
    let out = cli.output();
    let view = View::new(cli.wide);
    let confirm = Confirm {
        yes: cli.yes,
        dry_run: !mode.acts(),
    };

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

    // `handle-event` reads and checks its event before any AWS call, and calls a file that is
    // not JSON malformed exactly as `event classify` does (exit 1, the same reason).
    let handle_input = match &cli.command {
        Command::HandleEvent { file } => {
            let bytes = read_input(file)?;
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(event) => Some(event),
                Err(_) => {
                    let verdict = classify_bytes(&bytes, &ClassifyRules::from_config(&config));
                    return Err(Error::Rejected(format!(
                        "malformed event {}: {}",
                        file.display(),
                        verdict.reason()
                    )));
                }
            }
        }
        _ => None,
    };

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
        let (policy_arn, policy_created) =
            wiring::create_quarantine_policy(&config, &aws, retry).await?;
        let policy_msg = if policy_created {
            "created"
        } else {
            "already exists"
        };
        // Only where dormant would look for it, and never over a file that is there.
        let starter = PathBuf::from("dormant.toml");
        let written = cli.config.is_none() && write_starter_config(&starter)?;
        print_json_or(
            out,
            &serde_json::json!({
                "table": config.table,
                "created": created,
                "quarantine_policy": policy_arn,
                "quarantine_policy_created": policy_created,
                "config_written": written.then_some("dormant.toml"),
            }),
            |_| {
                let mut text = format!(
                    "table {} {msg}\nquarantine policy {policy_arn} {policy_msg}",
                    config.table
                );
                if written {
                    text.push_str(
                        "\nwrote ./dormant.toml: a starter configuration with dry_run = true, so \
                         `dormant sweep` decides and records what it would do and changes nothing \
                         in IAM; set dry_run = false once that looks right",
                    );
                }
                text
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut factory = EngineFactory::new(&config, &aws, Actor::Caller, retry).await?;
    factory.clock = clock;
    if mode == Mode::Preview {
        factory = factory.previewing();
    }
    if let Command::Serve {
        listen,
        allow_non_loopback,
    } = cli.command
    {
        crate::answers::run_serve(
            config.answers.as_ref(),
            &factory,
            listen,
            allow_non_loopback,
            clock,
        )
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let Assembly {
        fleet,
        api_calls,
        factory,
        ..
    } = factory.assemble().await?;
    let local = LocalDryRuns::from_env();
    let now = clock.now();
    // An ARN names its account; `role/NAME` needs a single configured account.
    let pick = |identity: &IdentityArg| match identity {
        IdentityArg::Subject(s) => fleet.engine(&s.principal.account),
        IdentityArg::Name { .. } => fleet.single(),
    };
    // Made after the confirmations, which ask on the same terminal.
    let bar = || Bar::on_terminal(out == Output::Json, factory.iam_limits().clone());
    match cli.command {
        Command::Sweep | Command::Tick => {
            let mut report = if matches!(cli.command, Command::Sweep) {
                if confirm.needed() {
                    confirm_first_sweep(&fleet, confirm, &local, &config.table).await?;
                    // A sweep takes the due steps too, deletions included.
                    confirm_deletions(&fleet, confirm, view, now, "sweep").await?;
                }
                let report = bounded(deadline, bar(), fleet.sweep(now)).await;
                if mode == Mode::Preview {
                    note_preview(&report, &local, &config.table, now);
                }
                report
            } else {
                if confirm.needed() {
                    confirm_deletions(&fleet, confirm, view, now, "tick").await?;
                }
                bounded(deadline, bar(), fleet.tick(now)).await
            };
            report.api_calls = api_calls.snapshot();
            print_json_or(out, &report, |r| fleet_table(r, view))?;
            Ok(if report.run.failed() > 0 || report.failed_accounts() > 0 {
                ExitCode::from(1)
            } else if report.run.breaker_tripped {
                // Automation must notice that steps were stopped, not only that none failed.
                ExitCode::from(BREAKER_TRIPPED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::List {
            stage,
            kind,
            account,
            due_before,
            name,
        } => {
            if let Some(account) = &account {
                fleet.engine(account)?;
            }
            let filtered = kind.is_some() || account.is_some() || due_before.is_some();
            let empty = match (stage, filtered || name.is_some()) {
                (Some(stage), false) => format!("no identity at stage {stage}"),
                (Some(stage), true) => {
                    format!("no identity at stage {stage} matches the filters")
                }
                (None, false) => "no tracked identities".to_string(),
                (None, true) => "no tracked identity matches the filters".to_string(),
            };
            let filter = ListFilter {
                stage,
                kind: kind.map(|k| match k {
                    KindFilter::Role => PrincipalKind::Role,
                    KindFilter::User => PrincipalKind::User,
                }),
                due_before,
                name,
            };
            let mut rows = Vec::new();
            for engine in &fleet.engines {
                if account.as_ref().is_none_or(|a| engine.account() == a) {
                    rows.extend(engine.list_filtered(&filter).await?);
                }
            }
            print_json_or(out, &rows, |rows| status_table(rows, view, &empty))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { identity } => {
            let s = pick(&identity)?.status(&identity, now).await?;
            print_json_or(out, &s, |s| status_table(std::slice::from_ref(s), view, ""))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DeadLetters => {
            let mut rows = Vec::new();
            for engine in &fleet.engines {
                rows.extend(
                    crate::ports::Store::dead_letters(&engine.store, engine.account()).await?,
                );
            }
            print_json_or(out, &rows, |rows| dead_letter_table(rows))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::History { identity } => {
            let h = pick(&identity)?.history(&identity).await?;
            print_json_or(out, &h, |h| history_table(h))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { .. } => {
            let mut stdout = std::io::stdout().lock();
            let rows = match report_format.unwrap_or(ReportFormat::Csv) {
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
        Command::Plan { days } => {
            let until = now + chrono::Duration::days(days);
            let mut rows = Vec::new();
            for engine in &fleet.engines {
                rows.extend(engine.plan(now, until).await?);
            }
            // Accounts one after another; the calendar is one.
            calendar(&mut rows);
            print_json_or(out, &rows, |rows| plan_table(rows, view, days))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::HandleEvent { file } => {
            let event = handle_input
                .ok_or_else(|| Error::Usage(format!("{}: no event was read", file.display())))?;
            let rules = ClassifyRules::from_config(&config);
            let report = handle_event(&event, &fleet, &rules, None, now)
                .await
                .map_err(|e| match e {
                    EventError::Failed(e) => e,
                    malformed => Error::Rejected(malformed.to_string()),
                })?;
            print_json_or(out, &report, |r| {
                let mut text = run_table(&r.run, view);
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
            print_json_or(out, &r, |r| command_text(r, view))?;
            Ok(exit_for(&r))
        }
        Command::Restore { identity, reason } => {
            let engine = pick(&identity)?;
            required_reason(&reason)?;
            if confirm.needed() {
                confirm.ask("restore", &engine.restore_plan(&identity, now).await?)?;
            }
            let r = engine.restore(&identity, &reason, now).await?;
            print_json_or(out, &r, |r| command_text(r, view))?;
            Ok(exit_for(&r))
        }
        Command::Exempt {
            identity,
            until,
            reason,
        } => {
            let r = pick(&identity)?
                .exempt(&identity, until, &reason, None, now)
                .await?;
            print_json_or(out, &r, |r| command_text(r, view))?;
            Ok(exit_for(&r))
        }
        Command::Approve { identity, reason } => {
            let engine = pick(&identity)?;
            required_reason(&reason)?;
            if confirm.needed() {
                confirm.ask("approve", &engine.approve_plan(&identity, now).await?)?;
            }
            let r = engine.approve(&identity, &reason, now).await?;
            print_json_or(out, &r, |r| command_text(r, view))?;
            Ok(exit_for(&r))
        }
        Command::Breaker { action } => {
            if let BreakerAction::Reset { reason } = &action {
                required_reason(reason)?;
                if confirm.needed() {
                    confirm_reset(&fleet, confirm).await?;
                }
            }
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
        Command::Init
        | Command::Serve { .. }
        | Command::Permissions { .. }
        | Command::Event { .. }
        | Command::Completions { .. }
        | Command::Config { .. }
        | Command::Man => Ok(ExitCode::SUCCESS),
    }
}

/// A sweep or tick within the deadline (if any), its progress on the bar (if any), the bar
/// taken off the terminal before the report is printed.
async fn bounded<F: std::future::Future>(
    deadline: Option<Deadline>,
    bar: Option<std::sync::Arc<Bar>>,
    run: F,
) -> F::Output {
    let progress = bar
        .clone()
        .map(|b| b as std::sync::Arc<dyn crate::app::progress::Progress>);
    let out = deadline::within(deadline, progress::within(progress, run)).await;
    if let Some(b) = &bar {
        b.finish();
    }
    out
}

/// One format flag: `--output json` makes `report` JSON; `--format` still chooses, and the two
/// disagreeing is a usage error rather than a guess.
fn report_format(format: Option<ReportFormat>, output: Option<Output>) -> Result<ReportFormat> {
    match (format, output) {
        (Some(ReportFormat::Csv), Some(Output::Json)) => Err(Error::Usage(
            "--output json and --format csv disagree: give one of them (--output json alone \
             prints the report as JSON)"
                .to_string(),
        )),
        (Some(format), _) => Ok(format),
        (None, Some(Output::Json)) => Ok(ReportFormat::Json),
        (None, _) => Ok(ReportFormat::Csv),
    }
}

type CliFleet =
    crate::app::fleet::Fleet<crate::adapters::iam::AwsIam, crate::adapters::dynamo::DynamoStore>;

/// Commands a dry run refuses rather than carries out: they only change state, so there is
/// nothing to preview. `init` only under `--dry-run`: `dry_run = true` in the file (the starter
/// configuration has it) is about IAM, and dormant's own table is what makes a dry run possible.
fn refusal(command: &Command, mode: Mode) -> Option<&'static str> {
    let reset = matches!(
        command,
        Command::Breaker {
            action: BreakerAction::Reset { .. }
        }
    );
    match (mode, command) {
        (Mode::Preview, Command::Init) => Some(
            "--dry-run: init creates the table and the quarantine policy, and a preview writes \
             nothing; run `dormant init` without --dry-run",
        ),
        (Mode::Preview, Command::Serve { .. }) => Some(
            "--dry-run: serve acts on owners' answers, and a preview writes nothing; run \
             `dormant serve` without --dry-run (dry_run = true in the file still only records)",
        ),
        (Mode::Preview, _) if reset => Some(
            "--dry-run: breaker reset only changes the breaker, and a preview writes nothing; \
             run it without --dry-run (`dormant breaker status` shows the breaker)",
        ),
        (Mode::Observe, _) if reset => Some(
            "dry_run = true in the configuration: breaker reset re-enables steps, which a dry \
             run does not take; reset it with dry_run = false (`dormant breaker status` shows \
             the breaker)",
        ),
        _ => None,
    }
}

/// A `--dry-run sweep` writes nothing in AWS, so the first-run question's evidence of it is kept
/// on this machine, for each account it swept. Not keeping it only means being asked later.
fn note_preview(
    report: &crate::app::fleet::FleetReport,
    local: &LocalDryRuns,
    table: &str,
    now: crate::domain::Timestamp,
) {
    for account in report.accounts.iter().filter(|a| a.ok) {
        if let Err(e) = local.note(table, &account.account, now) {
            tracing::warn!(account = %account.account, error = %e, "could not note the dry run; the first real sweep will ask");
        }
    }
}

/// A real sweep of an account that never had a dry-run sweep (nor a real one) is asked first:
/// the table holds no dry-run marker (observing runs write one) nor breaker item (real sweeps
/// write one), and this machine noted no `--dry-run sweep`.
async fn confirm_first_sweep(
    fleet: &CliFleet,
    confirm: Confirm,
    local: &LocalDryRuns,
    table: &str,
) -> Result<()> {
    let mut first = Vec::new();
    for engine in &fleet.engines {
        if !local.seen(table, engine.account()) && engine.first_real_sweep().await? {
            first.push(engine.account().to_string());
        }
    }
    if first.is_empty() {
        return Ok(());
    }
    confirm.ask(
        "sweep",
        &format!(
            "take real steps in account {} for the first time, and no dry run has been seen \
             there: `dormant --dry-run sweep` shows what a sweep would do and changes nothing",
            first.join(", ")
        ),
    )
}

/// A tick or sweep that would delete names what it deletes and asks; one that would not just
/// runs.
async fn confirm_deletions(
    fleet: &CliFleet,
    confirm: Confirm,
    view: View,
    now: crate::domain::Timestamp,
    what: &str,
) -> Result<()> {
    let mut doomed = Vec::new();
    for engine in &fleet.engines {
        for r in engine.due_deletions(now).await? {
            doomed.push(view.name(&r.subject.id()));
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    confirm.ask(
        what,
        &format!(
            "delete {} ({}): each is snapshotted first, and `dormant restore` recreates a role \
             or user, not its access keys or password",
            if doomed.len() == 1 {
                "1 identity".to_string()
            } else {
                format!("{} identities", doomed.len())
            },
            doomed.join(", ")
        ),
    )
}

/// `breaker reset` says what each account's breaker stopped before it lets steps run again.
async fn confirm_reset(fleet: &CliFleet, confirm: Confirm) -> Result<()> {
    let mut states = Vec::new();
    for engine in &fleet.engines {
        let state = engine.breaker().state().await?;
        states.push(match (&state.tripped, &state.cause) {
            (true, Some(cause)) => format!("account {} (tripped: {cause})", engine.account()),
            (true, None) => format!("account {} (tripped)", engine.account()),
            (false, _) => format!("account {} (not tripped)", engine.account()),
        });
    }
    confirm.ask(
        "breaker reset",
        &format!(
            "reset the circuit breaker in {}, so access-cutting steps run again",
            states.join(", ")
        ),
    )
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
