//! File descriptors: the container's init holds only stdio (and, before
//! start, the exec fifo), and --preserve-fds passes exactly the extra fds.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::harness::{is_berth, run_captured, Bundle};

/// A close-on-exec duplicate numbered >= 100, so that `dup2(hi, 3)` in the
/// child never aliases its target and always yields an inheritable fd 3.
fn high_dup(f: &fs::File) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC on an fd we own returns a new fd or -1.
    let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    assert!(
        fd >= 0,
        "fcntl F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd was just created and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn open_fds(pid: i32) -> Vec<(i32, PathBuf)> {
    let mut fds: Vec<(i32, PathBuf)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("list /proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().ok()?;
            Some((n, fs::read_link(e.path()).unwrap_or_default()))
        })
        .collect();
    fds.sort();
    fds
}

fn is_cloexec(pid: i32, fd: i32) -> bool {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|f| f & libc::O_CLOEXEC as u32 != 0)
}

/// After create the init may hold stdio and the exec fifo. runc's init is
/// a Go process whose runtime keeps an epoll fd and a pipe, both
/// close-on-exec; those are tolerated for other runtimes, never for berth.
#[test]
fn created_container_holds_only_stdio_and_exec_fifo() {
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    b.create().ok("create");
    let pid = b.pid();
    let fds = open_fds(pid);
    let root = fs::canonicalize(b.state_root()).unwrap();
    let (fifo, other): (Vec<_>, Vec<_>) = fds
        .iter()
        .filter(|(n, _)| *n > 2)
        .partition(|(_, target)| target.starts_with(&root));
    assert!(
        fifo.len() <= 1,
        "more than one fd into the state dir: {fds:?}"
    );
    let leaked: Vec<_> = other
        .iter()
        .filter(|(n, _)| is_berth() || !is_cloexec(pid, *n))
        .collect();
    assert!(
        leaked.is_empty(),
        "after create, expected fds 0-2 plus at most the exec fifo under {}; leaked {leaked:?} of {fds:?}",
        root.display()
    );
    let stdio: Vec<i32> = fds.iter().map(|(n, _)| *n).filter(|n| *n <= 2).collect();
    assert_eq!(stdio, [0, 1, 2], "stdio of the created init: {fds:?}");
}

#[test]
fn started_container_holds_only_stdio() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let fds = open_fds(b.pid());
    let nums: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(nums, [0, 1, 2], "fds of the running init: {fds:?}");
}

#[test]
fn preserve_fds_passes_extra_fds() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    let f3 = fs::File::create(host.join("three")).unwrap();
    let f4 = fs::File::create(host.join("four")).unwrap();
    b.sh("echo three >&3; echo four >&4; test -e /proc/self/fd/5 && echo fd5-present; exit 0");
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let mut c = b.command(&["run", "--preserve-fds", "2", "--bundle", &bundle, &b.id]);
    let (hi3, hi4) = (high_dup(&f3), high_dup(&f4));
    let (r3, r4) = (hi3.as_raw_fd(), hi4.as_raw_fd());
    // SAFETY: only async-signal-safe dup2 calls between fork and exec; dup2
    // clears FD_CLOEXEC on the new fds so they survive exec.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(r3, 3) < 0 || libc::dup2(r4, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_captured(c, "run --preserve-fds 2").ok("run --preserve-fds 2");
    assert!(
        !out.stdout.contains("fd5-present"),
        "fd 5 leaked into the container"
    );
    assert_eq!(
        fs::read_to_string(host.join("three")).unwrap(),
        "three\n",
        "write to fd 3"
    );
    assert_eq!(
        fs::read_to_string(host.join("four")).unwrap(),
        "four\n",
        "write to fd 4"
    );
}

#[test]
fn without_preserve_fds_extra_fds_are_closed() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    let f3 = fs::File::create(host.join("three")).unwrap();
    b.sh("echo leaked >&3 2>/dev/null && echo fd3-open || echo fd3-closed");
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let mut c = b.command(&["run", "--bundle", &bundle, &b.id]);
    let hi3 = high_dup(&f3);
    let r3 = hi3.as_raw_fd();
    // SAFETY: only async-signal-safe dup2 between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(r3, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_captured(c, "run").ok("run");
    assert_eq!(
        out.stdout.trim(),
        "fd3-closed",
        "inherited fd 3 without --preserve-fds"
    );
    assert_eq!(
        fs::read_to_string(host.join("three")).unwrap(),
        "",
        "fd 3 written"
    );
}
