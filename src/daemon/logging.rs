//! Logging for every command: tracing to stderr, colours only on a terminal (under systemd the
//! lines go to the journal as they are), and a filter that `evnas serve` can change while it
//! runs (`run.log_level`, applied on reload).

use std::sync::atomic::{AtomicBool, Ordering};
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
    let from_env = std::env::var_os("EVNAS_LOG").map(|_| EnvFilter::try_from_env("EVNAS_LOG"));
    let invalid = match &from_env {
        Some(Err(e)) => Some(e.to_string().replace('\n', "; ")),
        _ => None,
    };
    ENVIRONMENT_CHOSE.store(matches!(from_env, Some(Ok(_))), Ordering::Relaxed);
    let filter = match from_env {
        Some(Ok(filter)) => filter,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    if tracing_subscriber::registry().with(filter).with(fmt).try_init().is_ok() {
        let _ = SET_FILTER.set(Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())));
    }
    if let Some(reason) = invalid {
        tracing::warn!("EVNAS_LOG is not a log filter ({reason}); ignored");
    }
}

/// Whether a valid EVNAS_LOG chose the filter at start.
static ENVIRONMENT_CHOSE: AtomicBool = AtomicBool::new(false);

/// True when a valid EVNAS_LOG chose the filter at start (it then wins over the config's at
/// start).
pub fn set_by_environment() -> bool {
    ENVIRONMENT_CHOSE.load(Ordering::Relaxed)
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
