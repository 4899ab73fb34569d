//! `dormant`: the operator CLI. Wiring only; see `dormant::cli`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = dormant::cli::Cli::parse();
    // Logs go to stderr so stdout stays a clean JSON document; quiet unless asked (-v, -vv).
    let default = match cli.verbose {
        0 => "warn",
        1 => "warn,dormant=info",
        _ => "info,dormant=debug",
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DORMANT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .init();
    dormant::cli::main_with(cli).await
}
