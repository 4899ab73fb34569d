//! The `dormant` binary as an operator runs it in one emulated account: piped (scripts, CI) or
//! on a terminal (util-linux `script` gives it a pty).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use chrono::Duration;
use serde_json::Value;

use crate::support::account::Account;
use crate::support::cli::dormant_in;
use crate::support::emulator::emulator;

/// The `dormant` binary in one account, run from its own directory.
pub struct Op {
    pub account: String,
    pub dir: PathBuf,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Op {
    /// With an empty `dormant.toml` (the defaults).
    pub fn new(account: &Account) -> Self {
        let op = Self::bare(&account.id);
        std::fs::write(op.dir.join("dormant.toml"), "").unwrap();
        Op {
            now: account.now,
            ..op
        }
    }

    /// A directory with no configuration at all.
    pub fn bare(account: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dormant-operator-{account}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Op {
            account: account.to_string(),
            dir,
            now: chrono::Utc::now(),
        }
    }

    pub fn config(&self, text: &str) -> &Self {
        std::fs::write(self.dir.join("dormant.toml"), text).unwrap();
        self
    }

    pub fn command(&self, day: i64, args: &[&str]) -> Command {
        let now = (self.now + Duration::days(day)).to_rfc3339();
        let mut c = dormant_in(&self.dir, &self.account);
        c.args(["--now", now.as_str()])
            .args(args)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        c
    }

    /// No terminal anywhere: what scripts and CI see.
    pub fn run(&self, day: i64, args: &[&str]) -> Output {
        self.command(day, args).output().unwrap()
    }

    /// `--output json --yes`, stdout parsed.
    pub fn json(&self, day: i64, args: &[&str]) -> (i32, Value) {
        let out = self.run(day, &[&["--output", "json", "--yes"], args].concat());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("{args:?}: not JSON ({e}): {stdout}\nstderr: {}", err(&out))
        });
        (out.status.code().unwrap_or(-1), value)
    }

    /// Runs on a terminal (util-linux `script` gives it a pty), typing `input`; the exit code
    /// and everything the terminal showed. `None` where `script` is missing.
    pub fn on_terminal(
        &self,
        day: i64,
        args: &[&str],
        input: &str,
        env: &[(&str, &str)],
    ) -> Option<(i32, String)> {
        let c = self.command(day, args);
        let line = std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = Command::new("script");
        script
            .args(["-qec", &line, "/dev/null"])
            .current_dir(&self.dir)
            .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .env_remove("DORMANT_LOG")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Ok(mut child) = script.spawn() else {
            eprintln!("no `script` here: the terminal half of this test is skipped");
            return None;
        };
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Some((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
        ))
    }
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// IAM writes the emulator saw in this account.
pub fn iam_writes(account: &str) -> Vec<String> {
    emulator()
        .requests(account)
        .into_iter()
        .filter_map(|r| r["operation"].as_str().map(str::to_string))
        .filter(|op| {
            ["Tag", "Untag", "Put", "Delete", "Update", "Create"]
                .iter()
                .any(|p| op.starts_with(p))
                && !op.starts_with("PutItem")
                && !op.starts_with("DeleteItem")
                && !op.starts_with("UpdateItem")
                && !op.starts_with("CreateTable")
        })
        .collect()
}
