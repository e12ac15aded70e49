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
                say(&chain(&error));
                ExitCode::from(1)
            }
            Failure::Check(message) => {
                say(&message);
                ExitCode::from(3)
            }
        }
    }
}

/// An error and its causes, joined by ": ", leaving out a cause whose text the message already
/// holds (many errors quote their cause, and `{:#}` would say it twice).
fn chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
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

/// Write human-readable text to standard output with control characters shown as escapes
/// (line feeds and tabs kept), so that names from the database or the policy cannot drive the
/// terminal. Not for JSON (already escaped) nor SQL (where the characters are data).
pub(crate) fn out_text(text: &str) -> Result<(), Failure> {
    out(&curfew_policy::visible_lines(text))
}

/// Write to standard output, reporting failures (such as a closed pipe) instead of panicking
/// as `print!` does.
pub(crate) fn out(text: &str) -> Result<(), Failure> {
    write_stdout(text).map_err(stdout_failure)
}

/// Write to standard output and flush (what [`out`] does, the error left to the caller: a
/// sink of `curfew_ops` steps hands it back through the library).
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
}

fn stdout_failure(e: std::io::Error) -> Failure {
    Failure::Runtime(anyhow::Error::new(e).context("writing to standard output"))
}

impl From<curfew_ops::OpsError> for Failure {
    /// The operator's mistakes exit 2 with their message; failures at run time exit 1 with
    /// their causes; a step the sink could not print fails as [`out`] does.
    fn from(error: curfew_ops::OpsError) -> Self {
        match error {
            curfew_ops::OpsError::Output(e) => stdout_failure(e),
            e if e.is_usage() => Failure::Usage(e.to_string()),
            e => Failure::Runtime(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    /// An error that quotes its cause in its message, as `AuditError::Io` does.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "audit log x: cannot open: {}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// `curfew report` on a missing log said "No such file" twice.
    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let error = anyhow::Error::new(Quoting(io)).context("reading x");
        assert_eq!(
            chain(&error),
            "reading x: audit log x: cannot open: No such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&plain), "outer: inner");
    }
}
