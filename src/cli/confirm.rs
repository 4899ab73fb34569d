//! Confirmations before the commands that delete or let dormant cut access again (`approve`,
//! `restore`, `breaker reset`, a `tick` that deletes, a first real `sweep`): what will happen is
//! shown and asked on a terminal; without one they refuse unless `--yes`.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub(super) struct Confirm {
    /// `--yes`.
    pub yes: bool,
    /// A dry run changes nothing, so there is nothing to confirm.
    pub dry_run: bool,
}

impl Confirm {
    /// Whether asking is needed at all: no `--yes` and not a dry run.
    pub(super) fn needed(&self) -> bool {
        !self.yes && !self.dry_run
    }

    /// Shows `plan` and asks; `what` names the command in the refusal. `Ok` to go ahead.
    pub(super) fn ask(&self, what: &str, plan: &str) -> Result<()> {
        if !self.needed() {
            return Ok(());
        }
        // The answer comes from stdin and the question goes to stderr (stdout may be JSON).
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(Error::Usage(format!(
                "{what} asks for confirmation and there is no terminal to ask on: pass --yes \
                 to go ahead (it would {plan})"
            )));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "dormant will {plan}.\nGo ahead? [y/N] ");
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Error::Usage(format!("cannot read the answer: {e}")))?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(Error::Rejected(format!(
                "{what} not confirmed: nothing was changed"
            ))),
        }
    }
}
