//! A safe first run: `dormant init` writes a starter `./dormant.toml` that only decides and
//! records (`dry_run = true`); a real sweep of an account that never had a dry run asks first.
//! A dry run is seen in the table (the marker an observing run writes) or on this machine (the
//! note a `--dry-run sweep`, which writes nothing in AWS, leaves in the state directory).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::domain::time::fmt_time;
use crate::domain::Timestamp;
use crate::error::{Error, Result};

/// Where `--dry-run sweep` notes that it ran: `$DORMANT_STATE_DIR`, else
/// `$XDG_STATE_HOME/dormant`, else `~/.local/state/dormant`; one file per table and account,
/// `dry-runs/<table>/<account>`, holding the time of the last one.
#[derive(Debug, Clone)]
pub(super) struct LocalDryRuns {
    dir: Option<PathBuf>,
}

impl LocalDryRuns {
    /// The state directory the environment names; none without `HOME` (nothing is noted then).
    /// As the XDG specification says, a relative `XDG_STATE_HOME` is ignored.
    pub(super) fn from_env() -> Self {
        let absolute = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let dir = std::env::var_os("DORMANT_STATE_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| absolute("XDG_STATE_HOME").map(|d| d.join("dormant")))
            .or_else(|| absolute("HOME").map(|h| h.join(".local/state/dormant")));
        LocalDryRuns { dir }
    }

    /// Table names are `[A-Za-z0-9_.-]{3,255}` (checked with the configuration) and accounts 12
    /// digits: both are plain file names.
    fn path(&self, table: &str, account: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join("dry-runs")
                .join(table)
                .join(account),
        )
    }

    /// Whether a `--dry-run sweep` of `account` with `table` ran on this machine.
    pub(super) fn seen(&self, table: &str, account: &str) -> bool {
        self.path(table, account).is_some_and(|p| p.is_file())
    }

    /// Notes a `--dry-run sweep` of `account`: written to a temporary file and renamed, so a
    /// reader never sees half a note.
    pub(super) fn note(&self, table: &str, account: &str, at: Timestamp) -> Result<PathBuf> {
        let path = self.path(table, account).ok_or_else(|| {
            Error::Usage(
                "no state directory: set DORMANT_STATE_DIR, XDG_STATE_HOME or HOME".to_string(),
            )
        })?;
        let fail =
            |e: std::io::Error| Error::Usage(format!("cannot write {}: {e}", path.display()));
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let tmp = dir.join(format!(".{account}.{}.tmp", std::process::id()));
        let written = std::fs::write(&tmp, format!("{}\n", fmt_time(at)))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
        Ok(path)
    }
}

/// `dormant.example.toml` with `dry_run = true`, and a first line that says why.
pub(super) fn starter_config() -> String {
    let example = include_str!("../../dormant.example.toml");
    let body = example.replacen("dry_run = false ", "dry_run = true  ", 1);
    format!(
        "# Written by `dormant init`: dry_run = true, so sweeps only decide and record what they\n\
         # would do (see `dormant list`, `dormant history`). Set it to false to let dormant act.\n{body}"
    )
}

/// Writes the starter configuration to `path` unless a file is there; `true` if written.
pub(super) fn write_starter_config(path: &Path) -> Result<bool> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => {
            return Err(Error::Usage(format!(
                "cannot write {}: {e}",
                path.display()
            )))
        }
    };
    file.write_all(starter_config().as_bytes())
        .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_dry_run_is_seen_for_its_table_and_account_only() {
        let dir = std::env::temp_dir().join(format!("dormant-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let marks = LocalDryRuns {
            dir: Some(dir.clone()),
        };
        assert!(!marks.seen("dormant", "111122223333"));
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let path = marks.note("dormant", "111122223333", at).unwrap();
        assert!(marks.seen("dormant", "111122223333"));
        assert!(!marks.seen("dormant", "444455556666"));
        assert!(!marks.seen("other.table", "111122223333"));
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), fmt_time(at));
        // Again: replaced in place, no temporary file left behind.
        marks.note("dormant", "111122223333", at).unwrap();
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("111122223333")]);
        let _ = std::fs::remove_dir_all(&dir);

        let nowhere = LocalDryRuns { dir: None };
        assert!(!nowhere.seen("dormant", "111122223333"));
        assert!(nowhere.note("dormant", "111122223333", at).is_err());
    }

    #[test]
    fn the_starter_configuration_is_the_example_in_dry_run() {
        let text = starter_config();
        let config = crate::config::Config::from_toml(&text).expect("the starter parses");
        assert!(config.policy.dry_run);
        let example = crate::config::Config::from_toml(include_str!("../../dormant.example.toml"))
            .expect("the example parses");
        assert!(!example.policy.dry_run, "only dry_run differs");
        assert_eq!(config.table, example.table);
    }
}
