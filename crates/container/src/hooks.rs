//! OCI lifecycle hooks (`prestart`, `createRuntime`, `createContainer`,
//! `startContainer`, `poststart`, `poststop`).
//!
//! Each hook is executed as the runtime spec says: `path` is the program,
//! `args` is the whole argv (so `args[0]` becomes argv\[0\], not an extra
//! argument), `env` is the *entire* environment (nothing leaks from ours),
//! and the container state JSON arrives on stdin. A hook with a `timeout`
//! is killed with SIGKILL when it expires.
//!
//! Why this is written with `poll(2)` instead of threads: hooks such as
//! `createContainer` run inside the forked container init, which must stay
//! single-threaded (see ARCHITECTURE.md). So one loop feeds stdin, drains
//! stdout/stderr (non-blocking, so a chatty hook can never deadlock against
//! a state JSON larger than a pipe buffer) and watches for the exit through a
//! pidfd (kernel >= 5.3; older kernels fall back to a 10 ms `try_wait` tick).
//! The loop ends when the hook exits, not when its pipes close, so a
//! background process that keeps the hook's stdout open cannot hang us.
//!
//! The caller must ignore SIGPIPE (every Rust binary does by default);
//! a hook that exits without reading its stdin then costs an `EPIPE`,
//! which is ignored.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::spec::Hook;

/// How much of a hook's stdout and stderr is kept for error messages.
const TAIL_BYTES: usize = 4096;
/// Poll tick used to notice the hook's exit when `pidfd_open` is missing.
const FALLBACK_TICK: Duration = Duration::from_millis(10);
/// Upper bound on reads per pipe after the hook exited (a grandchild may
/// keep writing forever; we only want what the hook itself left behind).
const MAX_DRAIN_READS: usize = 16;

/// Which hook: "poststart hook 0 (/usr/bin/x)".
#[derive(Debug, Clone)]
pub struct HookId {
    pub kind: String,
    pub index: usize,
    pub path: PathBuf,
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} hook {} ({})",
            self.kind,
            self.index,
            self.path.display()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{hook}: timeout must be greater than 0 seconds, got {timeout}")]
    InvalidTimeout { hook: HookId, timeout: i64 },
    #[error("{hook}: spawn: {source}")]
    Spawn {
        hook: HookId,
        #[source]
        source: io::Error,
    },
    #[error("{hook}: {}{}", describe_status(.status), last_line_suffix(.stderr, .stdout))]
    Failed {
        hook: HookId,
        status: ExitStatus,
        /// Last [`TAIL_BYTES`] of the hook's stderr (lossy UTF-8).
        stderr: String,
        /// Last [`TAIL_BYTES`] of the hook's stdout (lossy UTF-8).
        stdout: String,
    },
    #[error("{hook}: timed out after {timeout}s")]
    TimedOut { hook: HookId, timeout: i64 },
    #[error("{hook}: {op}: {source}")]
    Io {
        hook: HookId,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Runs `hooks` in order and stops at the first failure; `kind` is the
/// spec's name for the list (e.g. "createRuntime") and is used in errors.
pub fn run_hooks(kind: &str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    hooks
        .iter()
        .enumerate()
        .try_for_each(|(index, hook)| run_hook(kind, index, hook, state_json))
}

/// Runs one hook to completion (or until its timeout) and reaps it.
pub fn run_hook(kind: &str, index: usize, hook: &Hook, state_json: &[u8]) -> Result<(), HookError> {
    let id = HookId {
        kind: kind.to_owned(),
        index,
        path: hook.path.clone(),
    };
    let timeout = match hook.timeout {
        Some(t) if t <= 0 => {
            return Err(HookError::InvalidTimeout {
                hook: id,
                timeout: t,
            })
        }
        Some(t) => Some(t),
        None => None,
    };
    let mut child = command(hook).spawn().map_err(|source| HookError::Spawn {
        hook: id.clone(),
        source,
    })?;
    let deadline = timeout.and_then(|t| Instant::now().checked_add(Duration::from_secs(t as u64)));
    let mut pipes = match Pipes::new(&mut child, state_json) {
        Ok(p) => p,
        Err(source) => {
            kill_and_reap(&mut child);
            return Err(HookError::Io {
                hook: id,
                op: "set up pipes",
                source,
            });
        }
    };
    match supervise(&mut child, &mut pipes, deadline) {
        Err(source) => {
            kill_and_reap(&mut child);
            Err(HookError::Io {
                hook: id,
                op: "wait",
                source,
            })
        }
        Ok(None) => {
            kill_and_reap(&mut child);
            Err(HookError::TimedOut {
                hook: id,
                timeout: timeout.unwrap_or_default(),
            })
        }
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(HookError::Failed {
            hook: id,
            status,
            stderr: pipes.err_tail.lossy(),
            stdout: pipes.out_tail.lossy(),
        }),
    }
}

/// The command exactly as the spec describes it; all three stdio are pipes.
fn command(hook: &Hook) -> Command {
    let mut cmd = Command::new(&hook.path);
    if let Some((argv0, rest)) = hook.args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    // `KEY=value`; an entry without '=' cannot be expressed through
    // `Command` and is skipped. Duplicates: the last one wins.
    for (key, value) in hook.env.iter().filter_map(|e| e.split_once('=')) {
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only makes
    // one async-signal-safe syscall; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            // Anything we opened without O_CLOEXEC must not reach the hook.
            // Best effort: close_range needs kernel >= 5.11.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    cmd
}

fn kill_and_reap(child: &mut Child) {
    // Both can only fail if the child is already reaped, which is the goal.
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for the hook to exit while feeding stdin and draining its output.
/// `Ok(None)` means the deadline passed first (the child is still running).
fn supervise(
    child: &mut Child,
    pipes: &mut Pipes,
    deadline: Option<Instant>,
) -> io::Result<Option<ExitStatus>> {
    let pidfd = pidfd_open(child.id());
    loop {
        let Some(wait) = time_left(deadline, pidfd.is_some()) else {
            return child.try_wait();
        };
        let exited = pipes.poll_once(pidfd.as_ref().map(|fd| fd.as_fd()), wait)?;
        if exited || pidfd.is_none() {
            if let Some(status) = child.try_wait()? {
                pipes.drain()?;
                return Ok(Some(status));
            }
        }
    }
}

/// Timeout for the next poll, `None` once the deadline has passed.
fn time_left(deadline: Option<Instant>, have_pidfd: bool) -> Option<PollTimeout> {
    let left = match deadline {
        Some(d) => Some(
            d.checked_duration_since(Instant::now())
                .filter(|l| !l.is_zero())?,
        ),
        None => None,
    };
    let left = match (left, have_pidfd) {
        (Some(l), true) => Some(l),
        (Some(l), false) => Some(l.min(FALLBACK_TICK)),
        (None, true) => None,
        (None, false) => Some(FALLBACK_TICK),
    };
    Some(match left {
        // Round up so we never spin on a sub-millisecond remainder.
        Some(l) => {
            PollTimeout::try_from(l.as_millis().saturating_add(1)).unwrap_or(PollTimeout::MAX)
        }
        None => PollTimeout::NONE,
    })
}

/// `pidfd_open(2)`: readable once the process exits. `None` if unsupported.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just returned this fd to us (with O_CLOEXEC set) and
    // nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// The last [`TAIL_BYTES`] written to a pipe.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        if self.0.len() > TAIL_BYTES {
            let excess = self.0.len() - TAIL_BYTES;
            self.0.drain(..excess);
        }
    }

    fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Stdin,
    Stdout,
    Stderr,
    Pidfd,
}

/// Our ends of the hook's stdio, all non-blocking.
struct Pipes<'a> {
    stdin: Option<ChildStdin>,
    input: &'a [u8],
    written: usize,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    out_tail: Tail,
    err_tail: Tail,
}

impl<'a> Pipes<'a> {
    fn new(child: &mut Child, input: &'a [u8]) -> io::Result<Self> {
        let pipes = Pipes {
            stdin: child.stdin.take().filter(|_| !input.is_empty()),
            input,
            written: 0,
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            out_tail: Tail::default(),
            err_tail: Tail::default(),
        };
        let fds = [
            pipes.stdin.as_ref().map(|p| p.as_fd()),
            pipes.stdout.as_ref().map(|p| p.as_fd()),
            pipes.stderr.as_ref().map(|p| p.as_fd()),
        ];
        fds.into_iter().flatten().try_for_each(set_nonblocking)?;
        Ok(pipes)
    }

    /// One poll round; returns whether the pidfd reported the exit.
    fn poll_once(&mut self, pidfd: Option<BorrowedFd<'_>>, wait: PollTimeout) -> io::Result<bool> {
        let ready = {
            let mut wanted: Vec<(BorrowedFd<'_>, PollFlags, Slot)> = Vec::with_capacity(4);
            if let Some(p) = &self.stdin {
                wanted.push((p.as_fd(), PollFlags::POLLOUT, Slot::Stdin));
            }
            if let Some(p) = &self.stdout {
                wanted.push((p.as_fd(), PollFlags::POLLIN, Slot::Stdout));
            }
            if let Some(p) = &self.stderr {
                wanted.push((p.as_fd(), PollFlags::POLLIN, Slot::Stderr));
            }
            if let Some(p) = pidfd {
                wanted.push((p, PollFlags::POLLIN, Slot::Pidfd));
            }
            let mut fds: Vec<PollFd<'_>> = wanted
                .iter()
                .map(|(fd, fl, _)| PollFd::new(*fd, *fl))
                .collect();
            let slots = wanted.iter().map(|(_, _, slot)| *slot);
            match poll(&mut fds, wait) {
                Ok(_) => {}
                Err(Errno::EINTR) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            let revents = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()));
            slots
                .into_iter()
                .zip(revents)
                .filter(|(_, r)| !r.is_empty())
                .map(|(slot, _)| slot)
                .collect::<Vec<_>>()
        };
        let mut exited = false;
        for slot in ready {
            match slot {
                Slot::Stdin => self.feed_stdin()?,
                Slot::Stdout => {
                    read_some(&mut self.stdout, &mut self.out_tail)?;
                }
                Slot::Stderr => {
                    read_some(&mut self.stderr, &mut self.err_tail)?;
                }
                Slot::Pidfd => exited = true,
            }
        }
        Ok(exited)
    }

    /// Writes as much of the state JSON as the pipe takes; closes stdin when
    /// done or when the hook stopped reading (EPIPE).
    fn feed_stdin(&mut self) -> io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        while self.written < self.input.len() {
            match stdin.write(&self.input[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::BrokenPipe => break,
                Err(e) => return Err(e),
            }
        }
        self.stdin = None;
        Ok(())
    }

    /// After the exit: keep what is already buffered, then close everything.
    fn drain(&mut self) -> io::Result<()> {
        self.stdin = None;
        for _ in 0..MAX_DRAIN_READS {
            let got_out = read_some(&mut self.stdout, &mut self.out_tail)?;
            let got_err = read_some(&mut self.stderr, &mut self.err_tail)?;
            if !got_out && !got_err {
                break;
            }
        }
        self.stdout = None;
        self.stderr = None;
        Ok(())
    }
}

/// One read from a non-blocking pipe; closes it at EOF. Returns whether
/// any bytes were read.
fn read_some<R: Read>(pipe: &mut Option<R>, tail: &mut Tail) -> io::Result<bool> {
    let Some(reader) = pipe.as_mut() else {
        return Ok(false);
    };
    let mut buf = [0u8; 8192];
    loop {
        return match reader.read(&mut buf) {
            Ok(0) => {
                *pipe = None;
                Ok(false)
            }
            Ok(n) => {
                tail.push(&buf[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        };
    }
}

fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("ended with wait status {:#x}", status.into_raw()),
    }
}

/// ": <last non-empty line of stderr>" (or of stdout if stderr is empty).
fn last_line_suffix(stderr: &str, stdout: &str) -> String {
    let last = |s: &str| {
        s.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    match last(stderr).or_else(|| last(stdout)) {
        Some(line) => format!(": {line}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn sh(script: &str, timeout: Option<i64>) -> Hook {
        Hook {
            path: PathBuf::from("/bin/sh"),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
            timeout,
        }
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("hook should have written {}: {e}", path.display()))
    }

    #[test]
    fn hook_receives_exact_state_json_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state");
        // Larger than a pipe buffer, to exercise partial non-blocking writes.
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"x","pad":"{}"}}"#,
            "a".repeat(200_000)
        );
        let hook = sh(&format!("cat > '{}'", out.display()), None);
        run_hook("prestart", 0, &hook, state.as_bytes()).unwrap();
        assert!(
            read(&out) == state,
            "hook's stdin differs from the state JSON"
        );
    }

    #[test]
    fn args_are_the_whole_argv_including_argv0() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("argv");
        let script = format!("tr '\\0' '|' < /proc/$$/cmdline > '{}'", out.display());
        let hook = Hook {
            path: PathBuf::from("/bin/sh"),
            args: vec![
                "my-hook".into(),
                "-c".into(),
                script.clone(),
                "one".into(),
                "two words".into(),
            ],
            ..Hook::default()
        };
        run_hook("poststart", 0, &hook, b"{}").unwrap();
        assert_eq!(read(&out), format!("my-hook|-c|{script}|one|two words|"));
    }

    #[test]
    fn env_is_exactly_the_hooks_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let mut hook = sh(&format!("exec /usr/bin/env > '{}'", out.display()), None);
        hook.env = vec!["FOO=bar".into(), "EMPTY=".into(), "EQ=a=b".into()];
        run_hook("createRuntime", 0, &hook, b"{}").unwrap();
        let mut got: Vec<String> = read(&out).lines().map(str::to_owned).collect();
        // dash exports PWD itself; everything else must come from hook.env.
        got.retain(|l| !l.starts_with("PWD="));
        got.sort();
        assert_eq!(
            got,
            ["EMPTY=", "EQ=a=b", "FOO=bar"],
            "no PATH or other leak expected"
        );
    }

    #[test]
    fn empty_args_use_path_as_argv0() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook.sh");
        let out = dir.path().join("argv0");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$0\" > '{}'\n", out.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let hook = Hook {
            path: script.clone(),
            ..Hook::default()
        };
        run_hook("poststop", 0, &hook, b"{}").unwrap();
        assert_eq!(read(&out).trim(), script.display().to_string());
    }

    #[test]
    fn nonzero_exit_reports_status_and_stderr_tail() {
        let hook = sh("echo noise >&2; echo 'bad config' >&2; exit 3", None);
        let err = run_hook("poststart", 2, &hook, b"{}").unwrap_err();
        assert!(matches!(&err, HookError::Failed { stderr, .. } if stderr.contains("noise")));
        assert_eq!(
            err.to_string(),
            "poststart hook 2 (/bin/sh): exited with status 3: bad config"
        );
    }

    #[test]
    fn killed_hook_reports_signal() {
        let err = run_hook("prestart", 0, &sh("kill -TERM $$", None), b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "prestart hook 0 (/bin/sh): killed by signal 15"
        );
    }

    #[test]
    fn timeout_kills_the_hook_and_reaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let hook = sh(
            &format!("echo $$ > '{}'; exec sleep 10", pidfile.display()),
            Some(1),
        );
        let start = Instant::now();
        let err = run_hook("createRuntime", 1, &hook, b"{}").unwrap_err();
        let took = start.elapsed();
        assert_eq!(
            err.to_string(),
            "createRuntime hook 1 (/bin/sh): timed out after 1s"
        );
        assert!(
            took < Duration::from_millis(1500),
            "timeout took {took:?}, expected ~1s"
        );
        let pid = read(&pidfile).trim().to_owned();
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "hook {pid} should be killed and reaped, not left running or as a zombie"
        );
    }

    #[test]
    fn timeout_is_not_waiting_for_pipes_held_by_a_grandchild() {
        // The hook exits at once but leaves a background process holding its
        // stdout; we must return on the exit, not on pipe EOF.
        let start = Instant::now();
        run_hook("poststart", 0, &sh("sleep 5 & exit 0", Some(3)), b"{}").unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn non_positive_timeout_is_rejected() {
        let err = run_hook("prestart", 4, &sh("true", Some(0)), b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "prestart hook 4 (/bin/sh): timeout must be greater than 0 seconds, got 0"
        );
    }

    #[test]
    fn missing_binary_is_a_spawn_error() {
        let hook = Hook {
            path: PathBuf::from("/nope/berth-no-such-hook"),
            ..Hook::default()
        };
        let err = run_hook("prestart", 0, &hook, b"{}").unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("prestart hook 0 (/nope/berth-no-such-hook): spawn: No such file"),
            "{err}"
        );
    }

    #[test]
    fn hook_not_reading_stdin_is_fine() {
        let state = vec![b'x'; 1 << 20];
        run_hook("poststop", 0, &sh("exit 0", None), &state).unwrap();
    }

    #[test]
    fn run_hooks_stops_at_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = [
            sh("true", None),
            sh("exit 1", None),
            sh(&format!("touch '{}'", marker.display()), None),
        ];
        let err = run_hooks("startContainer", &hooks, b"{}").unwrap_err();
        assert!(
            err.to_string().starts_with("startContainer hook 1 "),
            "{err}"
        );
        assert!(!marker.exists(), "hook 2 must not run after hook 1 failed");
    }

    #[test]
    fn hook_inherits_no_fds_beyond_stdio() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fds");
        // A deliberately leaky fd (no O_CLOEXEC).
        let leaky = std::fs::File::open("/dev/null").unwrap().into_raw_fd();
        // SAFETY: `leaky` is a valid fd we own.
        let high = unsafe { libc::fcntl(leaky, libc::F_DUPFD, 200) };
        let hook = sh(
            &format!("exec ls /proc/self/fd > '{}'", out.display()),
            None,
        );
        let result = run_hook("prestart", 0, &hook, b"{}");
        // SAFETY: closing the two fds this test opened.
        unsafe {
            libc::close(leaky);
            libc::close(high);
        }
        result.unwrap();
        let fds: Vec<String> = read(&out).lines().map(str::to_owned).collect();
        // 0-2, plus the directory fd `ls` itself opens.
        assert_eq!(
            fds,
            ["0", "1", "2", "3"],
            "hook must not inherit fds beyond stdio"
        );
    }
}
