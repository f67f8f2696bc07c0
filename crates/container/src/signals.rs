//! Foreground waiting: the runtime blocks the signals it forwards, waits
//! for them with `sigwait`, passes each on to the container's init, and
//! reaps the init on SIGCHLD. The mask is set only after the init was
//! cloned, and the init resets its own before exec.

use std::os::fd::OwnedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::error::{ContainerError, Result};

/// Signals a foreground runtime passes on to the container (runc's set:
/// all but SIGCHLD, SIGKILL, SIGSTOP and the synchronous faults).
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGWINCH,
    Signal::SIGPIPE,
    Signal::SIGURG,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGPWR,
];

/// Blocks the forwarded signals and SIGCHLD; restores the mask on drop.
pub struct ForwardGuard {
    set: SigSet,
    old: SigSet,
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> ContainerError {
    move |e| ContainerError::Sys {
        op,
        source: e.into(),
    }
}

/// 128+n for a signal, the status otherwise (the shell's convention).
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

impl ForwardGuard {
    pub fn block() -> Result<ForwardGuard> {
        let mut set = SigSet::empty();
        for &s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(sys("block signals"))?;
        Ok(ForwardGuard { set, old })
    }

    /// Waits for `pid` to exit, forwarding signals; returns its exit code.
    pub fn wait(&self, pid: i32) -> Result<i32> {
        loop {
            if let Some(code) = reap(pid)? {
                return Ok(code);
            }
            let sig = self.set.wait().map_err(sys("sigwait"))?;
            if sig != Signal::SIGCHLD {
                // SAFETY: kill with a pid we own as a child and a valid signal.
                unsafe { libc::kill(pid, sig as libc::c_int) };
            }
        }
    }

    /// Relays the terminal until the container ends; returns its exit code.
    pub fn wait_with_terminal(&self, pid: i32, master: OwnedFd) -> Result<i32> {
        let status = std::cell::Cell::new(None);
        let exited = || {
            if status.get().is_none() {
                status.set(reap(pid).ok().flatten());
            }
            status.get().is_some()
        };
        crate::console::relay(master, &exited)?;
        match status.get() {
            Some(code) => Ok(code),
            None => self.wait(pid),
        }
    }
}

/// Reaps any exited children; `Some(code)` once `pid` is among them.
fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writing into a local.
        let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Ok(Some(exit_code(status)));
        }
        if rc == 0 {
            return Ok(None);
        }
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => Err(ContainerError::Init(format!(
                    "process {pid} is not a child of the runtime"
                ))),
                _ => Err(ContainerError::Sys {
                    op: "waitpid",
                    source: err,
                }),
            };
        }
    }
}

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        // WIFEXITED with status 3: (3 << 8).
        assert_eq!(exit_code(3 << 8), 3);
        // Killed by SIGKILL (9): low bits hold the signal.
        assert_eq!(exit_code(9), 137);
    }
}

/// A signal by number ("9"), name ("KILL", "SIGKILL", "sigkill") or
/// real-time name ("RTMIN+3"), as runc's `kill` accepts them.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')?.parse().ok()?
        };
        let n = libc::SIGRTMIN() + off;
        return (n <= libc::SIGRTMAX()).then_some(n);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')?.parse().ok()?
        };
        let n = libc::SIGRTMAX() - off;
        return (n >= libc::SIGRTMIN()).then_some(n);
    }
    format!("SIG{name}")
        .parse::<Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod parse_tests {
    use super::parse_signal;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("sigterm"), Some(15));
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("999"), None);
    }
}
