//! `dormant`: the operator CLI. Wiring only; see `dormant::cli`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr so stdout stays a clean JSON document.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DORMANT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,dormant=info")),
        )
        .init();
    let cli = dormant::cli::Cli::parse();
    dormant::cli::main_with(cli).await
}
