//! A safe first run: `dormant init` writes a starter `./dormant.toml` that only decides and
//! records (`dry_run = true`); a real sweep of an account that never had a dry run asks first.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

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
