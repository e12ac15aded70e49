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
        // Colours only for a person at a terminal, never into journald or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        // A line for people: the sentence only. The structured fields some events carry
        // (event, target, pid, role, rule) repeat what it says; they are for JSON.
        LogFormat::Text => builder
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(
                |w, field, value| {
                    if field.name() == "message" {
                        write!(w, "{value:?}")
                    } else {
                        Ok(())
                    }
                },
            ))
            .try_init(),
        LogFormat::Json => {
            let _ = JSON.set(());
            builder.json().flatten_event(true).try_init()
        }
    };
}

/// Whether standard error carries JSON log records (set once, by [`init`]): then every other
/// message goes through the log too, so that each line stays a JSON object.
static JSON: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// See [`JSON`].
pub(crate) fn active() -> bool {
    JSON.get().is_some()
}

/// A line for standard error outside the log (the reason a command stops, a policy
/// diagnostic): plain text, or, when the log is JSON, a JSON line written directly so that it
/// shows whatever `CURFEW_LOG` filters out.
pub(crate) fn stderr_line(level: &str, plain: &str, message: &str) {
    if !active() {
        // Messages quote names from the policy and the database: show their control
        // characters rather than obey them (JSON below escapes them already).
        eprintln!("{}", curfew_policy::visible_lines(plain));
        return;
    }
    let line = serde_json::json!({
        "timestamp": jiff::Timestamp::now().to_string(),
        "level": level,
        "message": message,
    });
    eprintln!("{line}");
}
