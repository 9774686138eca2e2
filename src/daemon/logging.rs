//! Logging for every command: tracing to stderr, colours only on a terminal (under systemd the
//! lines go to the journal as they are), and a filter that `evnas serve` can change while it
//! runs (`run.log_level`, applied on reload).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

/// The filter when neither EVNAS_LOG nor a config says otherwise.
pub const DEFAULT_FILTER: &str = "info,kameo=warn";

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Installs the process's subscriber: the filter from EVNAS_LOG, else [`DEFAULT_FILTER`].
pub fn init() {
    let filter = EnvFilter::try_from_env("EVNAS_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    if tracing_subscriber::registry().with(filter).with(fmt).try_init().is_ok() {
        let _ = SET_FILTER.set(Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())));
    }
}

/// True when EVNAS_LOG chose the filter at start (it then wins over the config's at start).
pub fn set_by_environment() -> bool {
    std::env::var_os("EVNAS_LOG").is_some()
}

/// Replaces the filter with `directives` ("info", "info,evnas=debug"); kameo's chatter stays at
/// warn unless the directives name kameo.
pub fn set_level(directives: &str) -> Result<(), String> {
    let text = if directives.contains("kameo") {
        directives.to_string()
    } else {
        format!("{directives},kameo=warn")
    };
    let filter = EnvFilter::try_new(&text).map_err(|e| e.to_string())?;
    match SET_FILTER.get() {
        Some(set) => set(filter),
        None => Err("logging is not set up".into()),
    }
}
