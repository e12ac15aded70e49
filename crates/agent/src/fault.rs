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

/// Panic here, once per process, if the test asked for it (`CURFEW_FAULT=<point>`): to show
/// that a worker that dies is restarted.
pub(crate) fn panic_once(name: &'static str) {
    #[cfg(feature = "fault-injection")]
    {
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if std::env::var("CURFEW_FAULT").is_ok_and(|p| p == name)
            && !DONE.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("curfew: fault injected at {name}: panic");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}
