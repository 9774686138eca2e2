//! Lines for systemd's journal, where stderr is its stream (a service's default): each line
//! starts with its syslog priority (`<3>` an error, `<4>` a warning, `<6>` information, `<7>`
//! debugging), which the journal takes off and keeps as the line's PRIORITY, so that
//! `journalctl -u evnas -p warning` shows the warnings and errors alone (without it every line
//! is information). The journal stamps each line itself, so the log's own time is left out.
//! systemd names the stream in JOURNAL_STREAM (`device:inode`), as sd_journal_stream_fd's
//! documentation says to check: a process whose stderr was redirected since is not the journal's.

use std::sync::OnceLock;

use tracing::Level;

/// Whether this process's stderr is the journal's stream (decided once, at the first ask).
pub fn stderr_is_journal() -> bool {
    static IS_JOURNAL: OnceLock<bool> = OnceLock::new();
    *IS_JOURNAL.get_or_init(|| {
        std::env::var("JOURNAL_STREAM").is_ok_and(|named| stderr_identity().is_some_and(|own| own == named))
    })
}

/// stderr's `device:inode`, as systemd writes JOURNAL_STREAM.
fn stderr_identity() -> Option<String> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills `stat` where it returns 0; fd 2 is only read.
    if unsafe { libc::fstat(libc::STDERR_FILENO, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Some(format!("{}:{}", stat.st_dev, stat.st_ino))
}

/// The syslog priority of `level`, as the journal reads it at a line's start.
pub fn priority_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// `text` with every line prefixed by `prefix` (a multi-line message is several journal lines,
/// each with its priority).
pub fn prefix_lines(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len() + prefix.len());
    for line in text.split_inclusive('\n') {
        out.push_str(prefix);
        out.push_str(line);
    }
    out
}

/// Prints `text` (a line, or several) to stderr, each line with `level`'s priority where stderr
/// is the journal's stream: the lines that commands print outside the log (`error: ...`).
pub fn eprint_at(level: Level, text: impl std::fmt::Display) {
    if stderr_is_journal() {
        eprintln!("{}", prefix_lines(&text.to_string(), priority_prefix(level)));
    } else {
        eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_the_priority() {
        assert_eq!(prefix_lines("error: one", "<3>"), "<3>error: one");
        assert_eq!(
            prefix_lines("error: 2 problems:\n  - a\n  - b\n", "<3>"),
            "<3>error: 2 problems:\n<3>  - a\n<3>  - b\n"
        );
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority_prefix(Level::ERROR), "<3>");
        assert_eq!(priority_prefix(Level::WARN), "<4>");
        assert_eq!(priority_prefix(Level::INFO), "<6>");
        assert_eq!(priority_prefix(Level::DEBUG), "<7>");
    }
}
