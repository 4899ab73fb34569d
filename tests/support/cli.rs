#![allow(clippy::disallowed_methods)] // moto stamps wall-clock dates; tests work relative to them
//! The `dormant` binary as operators and scripts run it, against the emulator, in one account.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::emulator::emulator;

/// Runs `dormant` signed as one emulated account, from a directory of its own that holds its
/// `dormant.toml` (empty until [`Dormant::config`]) and any file a test writes.
pub struct Dormant {
    account: String,
    pub dir: PathBuf,
    /// Day 0 of [`Dormant::json`]'s `--now`.
    now: DateTime<Utc>,
}

impl Dormant {
    pub fn new(account: &str, now: DateTime<Utc>) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("dormant-{}-{account}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dormant.toml"), "").unwrap();
        Dormant {
            account: account.to_string(),
            dir,
            now,
        }
    }

    /// In a fresh account of its own, without dormant's table (for commands that need no set-up).
    pub fn in_new_account() -> Self {
        Self::new(&emulator().new_account(), Utc::now())
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Replaces `dormant.toml`.
    pub fn config(&self, text: &str) -> &Self {
        std::fs::write(self.dir.join("dormant.toml"), text).unwrap();
        self
    }

    /// Writes `name` into the directory; its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The command, not yet run: the binary, its directory, the emulator's endpoint and this
    /// account's credentials, SDK retries off, and nothing from the caller's AWS profile.
    pub fn command(&self) -> Command {
        dormant_in(&self.dir, &self.account)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs with `stdin` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin).unwrap();
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// Day `days` as `--now` takes it.
    pub fn at(&self, days: i64) -> String {
        (self.now + Duration::days(days)).to_rfc3339()
    }

    /// Runs with `--output json --now <day> --yes`: the exit code and stdout, parsed.
    pub fn json(&self, day: i64, args: &[&str]) -> (i32, Value) {
        let now = self.at(day);
        let mut all = vec!["--output", "json", "--now", now.as_str(), "--yes"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, value)
    }
}

/// The `dormant` binary, run in `dir` as `account` against the emulator: SDK retries off,
/// nothing from the caller's AWS profile or log filter, and its state directory (where a
/// `--dry-run sweep` notes that it ran) `dir/.state`, not the caller's home.
pub fn dormant_in(dir: &Path, account: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dormant"));
    command
        .current_dir(dir)
        .env("DORMANT_STATE_DIR", dir.join(".state"))
        .env("AWS_ENDPOINT_URL", emulator().endpoint())
        .env("AWS_ACCESS_KEY_ID", account)
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("DORMANT_LOG");
    command
}

/// What the process wrote to stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
