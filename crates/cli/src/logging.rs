//! Logs: human-readable on a terminal, JSON for collectors. Filter with CURFEW_LOG (as
//! RUST_LOG: `info`, `debug`, `curfew=debug,tokio_postgres=warn`).

use tracing_subscriber::EnvFilter;

/// Log line formats.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Send logs to standard error in the chosen format.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CURFEW_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
