//! Crash-test hooks. With the `fault-injection` feature (test builds only), `CURFEW_FAULT=<point>`
//! makes the process SIGKILL itself at that point: no destructor runs, no buffer is flushed,
//! open transactions die with the connection. Without the feature this is a no-op.

/// Die here if the crash test asked for it.
pub(crate) fn point(name: &'static str) {
    #[cfg(feature = "fault-injection")]
    if std::env::var("CURFEW_FAULT").is_ok_and(|p| p == name) {
        eprintln!("curfew: fault injected at {name}: SIGKILL");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}
