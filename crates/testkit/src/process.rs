//! A child process (a `curfew agent`, a `psql` holding a lock) that a test started, ended when
//! the test ends: a panicking assertion must not leave an agent running that keeps ending
//! sessions and writing audit records after its test has gone.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// A child process killed and reaped on drop, unless it has already exited. Derefs to the
/// [`Child`], so a test reads its output, signals it and waits for it as before.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl From<Child> for KillOnDrop {
    fn from(child: Child) -> Self {
        KillOnDrop(child)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::KillOnDrop;

    /// Whether a process with this id exists (`kill -0`).
    fn alive(pid: u32) -> bool {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn a_child_is_killed_and_reaped_when_its_guard_drops() {
        let guard = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = guard.id();
        assert!(alive(pid));
        drop(guard);
        assert!(!alive(pid), "sleep {pid} outlived its guard");
    }

    #[test]
    fn a_child_is_killed_when_the_test_panics() {
        let mut pid = None;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let guard = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
            pid = Some(guard.id());
            panic!("an assertion fails while the child runs");
        }));
        assert!(outcome.is_err());
        let pid = pid.unwrap();
        assert!(!alive(pid), "sleep {pid} outlived the panicking test");
    }

    #[test]
    fn a_child_that_already_exited_is_left_alone() {
        let mut guard = KillOnDrop(Command::new("true").spawn().unwrap());
        assert!(guard.wait().unwrap().success());
        drop(guard);
    }
}
