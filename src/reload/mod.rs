//! Config reload for `evnas serve`: triggers (SIGHUP, a change of the config file) → load and
//! validate → diff against the running config → apply the hot values at the next generation
//! boundary, or refuse the whole reload, one reason per field, leaving the running config as
//! it was.

pub mod diff;
pub mod watch;

pub use diff::{diff, ConfigDiff};
pub use watch::{ConfigWatch, Trigger};
