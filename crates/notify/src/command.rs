//! `[notify] command`: a program run without a shell, the event as one JSON object on its
//! standard input.
//!
//! The command line is split into words the way a POSIX shell splits them — whitespace
//! separates words; single quotes, double quotes and backslashes keep spaces in a word — but
//! no shell runs it: no variables, globs, pipes, redirections or `;`. The first word is the
//! program (looked up in `PATH` unless it contains a `/`). The program gets a small
//! environment (`PATH`, `HOME`, `LANG`, and `CURFEW_EVENT` with the event's name), not the
//! agent's. Exit status 0 is success; anything else, or no exit within the attempt's time
//! limit (the program and its process group are then killed), is a failure, retried.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// The words of a `[notify] command`, or why it cannot be split (unbalanced quotes, nothing
/// to run).
pub fn split_command(command: &str) -> Result<Vec<String>, String> {
    let words = shlex::split(command).ok_or_else(|| {
        "cannot split the command into words (an unbalanced quote or a trailing backslash)"
            .to_owned()
    })?;
    if words.is_empty() {
        return Err("the command is empty".to_owned());
    }
    Ok(words)
}

/// Kills the program's whole process group if the attempt is abandoned (timed out, or the
/// agent stopping), so that nothing it started lingers.
struct Group(Option<rustix::process::Pid>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Run the command once with `body` on its standard input.
pub(crate) async fn run(command: &str, body: &str) -> Result<(), String> {
    let words = split_command(command)?;
    let event = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&words[0]);
    cmd.args(&words[1..])
        .env_clear()
        .env("CURFEW_EVENT", event)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for key in ["PATH", "HOME", "LANG"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", words[0]))?;
    let mut group = Group(
        child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?)),
    );
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input is not a failure by itself: its exit
        // status says.
        let _ = stdin.write_all(body.as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
        drop(stdin);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for {}: {e}", words[0]))?;
    // It exited: its group needs no killing (and its id may be reused).
    group.0 = None;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    Err(format!(
        "{} exited with {}{}",
        words[0],
        output.status,
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_like_a_shell_splits_them_without_running_one() {
        assert_eq!(
            split_command(r#"/usr/bin/notify-send --to 'on call' "a b" c\ d $HOME;x"#),
            Ok(vec![
                "/usr/bin/notify-send".to_owned(),
                "--to".to_owned(),
                "on call".to_owned(),
                "a b".to_owned(),
                "c d".to_owned(),
                "$HOME;x".to_owned(),
            ])
        );
        assert!(split_command("say 'unbalanced").is_err());
        assert!(split_command("   ").is_err());
    }
}
