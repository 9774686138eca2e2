//! How a failed command ends: one `error:` line whose causes read once each, outermost context
//! first, and an exit code that says whose fault it was (README, "Exit codes").

use std::process::ExitCode;

/// Exit codes of every `evnas` command besides 0 (it did what it was asked).
pub mod code {
    /// It failed while running: data, weights, checkpoints, devices, a failing computation.
    pub const RUNTIME: u8 = 1;
    /// The command line or the configuration is wrong; nothing was run.
    pub const USAGE: u8 = 2;
    /// Stopped by SIGINT/SIGTERM; a search can be resumed.
    pub const INTERRUPTED: u8 = 130;
}

/// The error chain as one line: each error's own message, joined by ": ". Error types in evnas
/// never repeat their source in their message, so every cause appears once.
pub fn describe(err: &anyhow::Error) -> String {
    err.chain().map(|e| without_os_error_code(&e.to_string())).collect::<Vec<_>>().join(": ")
}

/// The exit code for a failed command.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(exit_number(err))
}

/// [`exit_code`] as its number.
pub fn exit_number(err: &anyhow::Error) -> u8 {
    if is_usage(err) {
        code::USAGE
    } else {
        code::RUNTIME
    }
}

/// Whether `err` says the config, the command line or the launcher's environment is to change:
/// a config error, an error a command marked as [`Usage`], a malformed launch environment or
/// one that points at another job's store. (A rank given to two processes is not: a rank a
/// supervisor restarted while the others still waited for it looks the same, and a restart of
/// the whole job mends it.)
fn is_usage(err: &anyhow::Error) -> bool {
    use evnas::distributed::DistributedError;
    let launch_env = |cause: &(dyn std::error::Error + 'static)| {
        matches!(
            cause.downcast_ref(),
            Some(DistributedError::LaunchEnv { .. } | DistributedError::OtherJob { .. })
        )
    };
    evnas::config::ConfigError::is_in(err)
        || err.downcast_ref::<Usage>().is_some()
        || err.chain().any(launch_env)
}

/// The context of an error that the command line is to mend, where the library cannot tell (a
/// command knows that nothing has run yet): `error.context(Usage("cannot start training"))`.
#[derive(Debug)]
pub struct Usage(pub &'static str);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// `No such file or directory (os error 2)` → `No such file or directory`: the number says
/// nothing more to a user than the text before it.
fn without_os_error_code(message: &str) -> String {
    match message.rfind(" (os error ") {
        Some(at) if message.ends_with(')') => message[..at].to_string(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_code_is_dropped() {
        assert_eq!(
            without_os_error_code("No such file or directory (os error 2)"),
            "No such file or directory"
        );
        assert_eq!(without_os_error_code("bad (thing)"), "bad (thing)");
    }

    #[test]
    fn chain_reads_outermost_first_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let err = anyhow::Error::new(io).context("cannot read x.gz").context("cannot start the search");
        assert_eq!(describe(&err), "cannot start the search: cannot read x.gz: No such file or directory");
    }
}
