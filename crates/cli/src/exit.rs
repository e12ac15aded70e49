//! How a command fails: the message for the user and the exit code that goes with it.

use std::process::ExitCode;

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or a bad policy file (exit 2). The diagnostics were already printed when
    /// `message` is empty.
    Usage(String),
    /// Something failed at run time: I/O, the network, the database (exit 1).
    Runtime(anyhow::Error),
    /// A check or verification ran and did not pass (exit 3).
    Check(String),
}

impl Failure {
    /// Print the message (if any) and give the exit code.
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Failure::Usage(message) => {
                if !message.is_empty() {
                    say(&message);
                }
                ExitCode::from(2)
            }
            // The reader went away (`curfew explain | head`): not an error, as for any Unix tool.
            Failure::Runtime(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
            Failure::Runtime(error) => {
                say(&format!("{error:#}"));
                ExitCode::from(1)
            }
            Failure::Check(message) => {
                say(&message);
                ExitCode::from(3)
            }
        }
    }
}

/// The final word: through the log when it is JSON (so that every line stays JSON),
/// else as a plain line.
fn say(message: &str) {
    crate::logging::stderr_line("ERROR", &format!("curfew: {message}"), message);
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Runtime(error)
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Write to standard output, reporting failures (such as a closed pipe) instead of panicking
/// as `print!` does.
pub(crate) fn out(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Runtime(anyhow::Error::new(e).context("writing to standard output")))
}
