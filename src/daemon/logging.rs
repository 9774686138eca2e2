//! Logging for every command: tracing to stderr, colours only on a terminal, each line with its
//! priority where stderr is the journal's stream ([`super::journal`]), and a filter that
//! `evnas serve` can change while it runs (`run.log_level`, applied on reload).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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
    let to_journal = super::journal::stderr_is_journal();
    let plain =
        (!to_journal).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi));
    let journal = to_journal.then(|| {
        let format = WithPriority(tracing_subscriber::fmt::format().without_time().with_ansi(false));
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).event_format(format)
    });
    if tracing_subscriber::registry().with(filter).with(plain).with(journal).try_init().is_ok() {
        let _ = SET_FILTER.set(Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())));
    }
    if let Some(reason) = invalid {
        tracing::warn!("EVNAS_LOG is not a log filter ({reason}); ignored");
    }
}

/// An event as `F` formats it, every line of it behind the journal's priority of its level.
struct WithPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut lines = String::new();
        self.0.format_event(ctx, Writer::new(&mut lines), event)?;
        let prefix = super::journal::priority_prefix(*event.metadata().level());
        writer.write_str(&super::journal::prefix_lines(&lines, prefix))
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
