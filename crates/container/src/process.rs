//! Attributes of the container process that its init sets just before
//! `execve`: rlimits, OOM score, user and groups, umask, no_new_privs, file
//! descriptors, I/O priority, personality, and finding and running the
//! executable.
//!
//! Every function here acts on the calling process only and is meant for the
//! container's init after fork (single-threaded, inside the container's
//! namespaces, after pivot_root). The caller decides the order; runc's is:
//! close fds -> drop bounding caps -> keep caps -> [`set_identity`] -> ... ->
//! [`set_no_new_privs`] -> seccomp -> [`exec`].
//!
//! Failures the user can fix by changing the config, or by granting a
//! capability, say so in the error: a silently skipped rlimit or OOM score
//! is a container that behaves differently from what was asked.

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use crate::spec::{IoPriority, Personality, Rlimit, User};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("unknown rlimit {0:?}")]
    UnknownRlimit(String),
    #[error("set rlimit {name} to soft {soft} hard {hard}: {hint}{source}")]
    Rlimit {
        name: String,
        soft: String,
        hard: String,
        /// Why the kernel refused, with a trailing ": ", or empty.
        hint: String,
        source: io::Error,
    },
    #[error("oom_score_adj {0} is outside -1000..=1000")]
    OomScoreRange(i32),
    #[error("set oom_score_adj to {value}: {hint}{source}")]
    OomScore {
        value: i32,
        hint: String,
        source: io::Error,
    },
    #[error("setgroups {gids:?}: {source}")]
    Setgroups { gids: Vec<u32>, source: io::Error },
    #[error("setgroups {0:?}: /proc/self/setgroups is \"deny\" in this user namespace, so additionalGids cannot be set")]
    SetgroupsDenied(Vec<u32>),
    #[error("setresgid {gid}: {source}")]
    Setresgid { gid: u32, source: io::Error },
    #[error("setresuid {uid}: {source}")]
    Setresuid { uid: u32, source: io::Error },
    #[error("prctl PR_SET_NO_NEW_PRIVS: {0}")]
    NoNewPrivs(io::Error),
    #[error("mark file descriptors close-on-exec: {0}")]
    Cloexec(io::Error),
    #[error("exec: {arg0:?}: {reason}")]
    Executable { arg0: String, reason: String },
    #[error("exec {path}: {what} contains a NUL byte")]
    Nul { path: String, what: String },
    #[error("exec {path}: {source}")]
    Exec { path: String, source: io::Error },
    #[error("unknown io priority class {0:?} (want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)")]
    IoPriorityClass(String),
    #[error("io priority {0} is outside 0..=7")]
    IoPriorityLevel(i32),
    #[error("ioprio_set class {class} priority {priority}: {source}")]
    IoPriority {
        class: String,
        priority: i32,
        source: io::Error,
    },
    #[error("unknown personality domain {0:?} (want LINUX or LINUX32)")]
    PersonalityDomain(String),
    #[error("personality flags {0:?} are not supported")]
    PersonalityFlags(Vec<String>),
    #[error("personality {domain}: {source}")]
    Personality { domain: String, source: io::Error },
}

/// The resource type `setrlimit` takes on this libc.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
/// The resource type `setrlimit` takes on this libc.
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

/// The 16 Linux rlimits by their `config.json` names.
const RLIMITS: [(&str, RlimitResource); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

/// The resource of an rlimit name such as `"RLIMIT_NOFILE"`.
pub fn rlimit_resource(name: &str) -> Option<RlimitResource> {
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn limit_text(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn getrlimit(resource: RlimitResource) -> io::Result<libc::rlimit> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `cur`, which lives on our stack.
    if unsafe { libc::getrlimit(resource, &mut cur) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cur)
}

/// `setrlimit` each of `rlimits`, in order; the first failure is returned
/// with the reason when we can tell it (raising a hard limit needs
/// CAP_SYS_RESOURCE; RLIMIT_NOFILE cannot exceed fs.nr_open).
pub fn set_rlimits(rlimits: &[Rlimit]) -> Result<(), ProcessError> {
    for r in rlimits {
        let resource =
            rlimit_resource(&r.kind).ok_or_else(|| ProcessError::UnknownRlimit(r.kind.clone()))?;
        let new = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: setrlimit only reads `new`.
        if unsafe { libc::setrlimit(resource, &new) } < 0 {
            let source = io::Error::last_os_error();
            return Err(ProcessError::Rlimit {
                name: r.kind.clone(),
                soft: limit_text(r.soft),
                hard: limit_text(r.hard),
                hint: rlimit_hint(resource, r.hard, &source),
                source,
            });
        }
    }
    Ok(())
}

fn rlimit_hint(resource: RlimitResource, hard: u64, err: &io::Error) -> String {
    if err.raw_os_error() != Some(libc::EPERM) {
        return String::new();
    }
    if let Ok(cur) = getrlimit(resource) {
        if hard > cur.rlim_max {
            return format!(
                "hard limit above the current {} needs CAP_SYS_RESOURCE: ",
                limit_text(cur.rlim_max)
            );
        }
    }
    if resource == libc::RLIMIT_NOFILE {
        if let Ok(nr_open) = std::fs::read_to_string("/proc/sys/fs/nr_open") {
            if nr_open.trim().parse::<u64>().is_ok_and(|n| hard > n) {
                return format!("above fs.nr_open {}: ", nr_open.trim());
            }
        }
    }
    String::new()
}

/// Write `value` to `/proc/self/oom_score_adj`.
pub fn set_oom_score_adj(value: i32) -> Result<(), ProcessError> {
    if !(-1000..=1000).contains(&value) {
        return Err(ProcessError::OomScoreRange(value));
    }
    const PATH: &str = "/proc/self/oom_score_adj";
    std::fs::write(PATH, value.to_string()).map_err(|source| {
        let current = std::fs::read_to_string(PATH).unwrap_or_default();
        let current = current.trim();
        let hint = match current.parse::<i32>() {
            Ok(cur) if value < cur && source.kind() == io::ErrorKind::PermissionDenied => {
                format!("lowering it below the current {cur} needs CAP_SYS_RESOURCE: ")
            }
            _ => String::new(),
        };
        ProcessError::OomScore {
            value,
            hint,
            source,
        }
    })
}

/// Whether `/proc/self/setgroups` says `deny` (a user namespace whose gid
/// map was written by an unprivileged process); setgroups then fails.
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Become `user`: setgroups(additionalGids) — also when empty, to drop the
/// groups inherited from the runtime — then setresgid, then setresuid.
/// Where `/proc/self/setgroups` is `deny` setgroups is skipped, and asking
/// for additional gids there is an error rather than silently ignored.
pub fn set_identity(user: &User) -> Result<(), ProcessError> {
    if setgroups_denied() {
        if !user.additional_gids.is_empty() {
            return Err(ProcessError::SetgroupsDenied(user.additional_gids.clone()));
        }
    } else {
        let gids: Vec<Gid> = user
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).map_err(|e| ProcessError::Setgroups {
            gids: user.additional_gids.clone(),
            source: e.into(),
        })?;
    }
    let gid = Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| ProcessError::Setresgid {
        gid: user.gid,
        source: e.into(),
    })?;
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| ProcessError::Setresuid {
        uid: user.uid,
        source: e.into(),
    })?;
    Ok(())
}

/// Set the umask from `user.umask` (default 0o022).
pub fn set_umask(user: &User) {
    let mode = user.umask.unwrap_or(0o022) & 0o777;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mode));
}

/// `PR_SET_NO_NEW_PRIVS`: execve can no longer grant privileges (setuid
/// bits, file capabilities).
pub fn set_no_new_privs() -> Result<(), ProcessError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(ProcessError::NoNewPrivs(io::Error::last_os_error()));
    }
    Ok(())
}

/// The inclusive fd ranges to mark close-on-exec: everything from
/// `max(3, keep_from)` up, minus `keep`.
fn cloexec_ranges(keep_from: i32, keep: &[i32]) -> Vec<(u32, u32)> {
    let start = keep_from.max(3) as u32;
    let mut kept: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd >= 0 && fd as u32 >= start)
        .map(|&fd| fd as u32)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut ranges = Vec::new();
    let mut next = start;
    for fd in kept {
        if fd > next {
            ranges.push((next, fd - 1));
        }
        next = fd + 1;
    }
    ranges.push((next, u32::MAX));
    ranges
}

/// Mark close-on-exec every fd >= 3 except those below `keep_from` (stdio
/// and `--preserve-fds`) and those in `keep` (exec fifo, sync socket...),
/// so that exec leaks nothing of the runtime into the container. Uses
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11), else walks
/// `/proc/self/fd`.
pub fn mark_fds_cloexec(keep_from: i32, keep: &[i32]) -> Result<(), ProcessError> {
    let ranges = cloexec_ranges(keep_from, keep);
    for (i, (first, last)) in ranges.iter().enumerate() {
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
        // fds; it closes nothing and touches no memory.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                *first,
                *last,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            let unsupported = matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL));
            if i == 0 && unsupported {
                return cloexec_by_proc(&ranges);
            }
            return Err(ProcessError::Cloexec(err));
        }
    }
    Ok(())
}

fn cloexec_by_proc(ranges: &[(u32, u32)]) -> Result<(), ProcessError> {
    // Collect first: the directory's own fd is open while we iterate.
    let fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .map_err(ProcessError::Cloexec)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if !ranges.iter().any(|(a, b)| (*a..=*b).contains(&fd)) {
            continue;
        }
        let fd = fd as libc::c_int;
        // SAFETY: F_GETFD/F_SETFD on an fd number only read and set its flags;
        // an fd that is gone (the read_dir one) fails with EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            continue;
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EBADF) {
                return Err(ProcessError::Cloexec(err));
            }
        }
    }
    Ok(())
}

/// `PATH` when the container's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why `path` cannot be executed, or `None` if it can: a regular file (or
/// anything not a directory) with an execute bit, as Go's `exec.LookPath`.
fn not_executable(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(format!("stat {}: {e}", path.display())),
        Ok(m) if m.is_dir() => Some(format!("{} is a directory", path.display())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "{}: permission denied: no execute bit",
            path.display()
        )),
        Ok(_) => None,
    }
}

/// Resolve `arg0` as runc does: a name with a `/` is used as is; a bare
/// name is searched in the `PATH` of `env` (the container's environment;
/// [`DEFAULT_PATH`] if unset), an empty entry meaning the current directory.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<CString, ProcessError> {
    let fail = |reason: String| ProcessError::Executable {
        arg0: arg0.to_string(),
        reason,
    };
    let to_cstring = |p: PathBuf| {
        CString::new(p.into_os_string().into_encoded_bytes())
            .map_err(|_| fail("contains a NUL byte".into()))
    };
    if arg0.contains('/') {
        return match not_executable(Path::new(arg0)) {
            Some(reason) => Err(fail(reason)),
            None => to_cstring(PathBuf::from(arg0)),
        };
    }
    if !arg0.is_empty() {
        let path = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        for dir in path.split(':') {
            let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
            if not_executable(&candidate).is_none() {
                return to_cstring(candidate);
            }
        }
    }
    Err(fail("executable file not found in $PATH".into()))
}

fn cstrings(path: &CStr, what: &str, items: &[String]) -> Result<Vec<CString>, ProcessError> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            CString::new(s.as_bytes()).map_err(|_| ProcessError::Nul {
                path: path.to_string_lossy().into_owned(),
                what: format!("{what}[{i}]"),
            })
        })
        .collect()
}

/// `execve(path, args, env)`; returns only on failure.
pub fn exec(path: &CStr, args: &[String], env: &[String]) -> Result<Infallible, ProcessError> {
    let args = cstrings(path, "args", args)?;
    let env = cstrings(path, "env", env)?;
    let err = match nix::unistd::execve(path, &args, &env) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    Err(ProcessError::Exec {
        path: path.to_string_lossy().into_owned(),
        source: err.into(),
    })
}

const IOPRIO_CLASS_SHIFT: i32 = 13;
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// The kernel's `ioprio` value for a `process.ioPriority`.
fn ioprio_value(p: &IoPriority) -> Result<i32, ProcessError> {
    let class = match p.class.as_str() {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        other => return Err(ProcessError::IoPriorityClass(other.to_string())),
    };
    if !(0..=7).contains(&p.priority) {
        return Err(ProcessError::IoPriorityLevel(p.priority));
    }
    Ok((class << IOPRIO_CLASS_SHIFT) | p.priority)
}

/// `ioprio_set` for this process.
pub fn set_io_priority(p: &IoPriority) -> Result<(), ProcessError> {
    let value = ioprio_value(p)?;
    // SAFETY: ioprio_set takes integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc < 0 {
        return Err(ProcessError::IoPriority {
            class: p.class.clone(),
            priority: p.priority,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// `personality(2)` for `linux.personality`: domain LINUX or LINUX32. The
/// spec defines no flags yet, so any flag is refused rather than ignored.
pub fn set_personality(p: &Personality) -> Result<(), ProcessError> {
    let persona = match p.domain.as_str() {
        "LINUX" => PER_LINUX,
        "LINUX32" => PER_LINUX32,
        other => return Err(ProcessError::PersonalityDomain(other.to_string())),
    };
    if !p.flags.is_empty() {
        return Err(ProcessError::PersonalityFlags(p.flags.clone()));
    }
    // SAFETY: personality takes an integer and touches no memory.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(ProcessError::Personality {
            domain: p.domain.clone(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Run a check in a forked child so that process-wide changes (caps, uid,
/// seccomp, rlimits) do not touch the test runner.
#[cfg(test)]
pub(crate) mod test_child {
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;

    use nix::fcntl::OFlag;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, pipe2, ForkResult};

    fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), String> {
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))
    }

    /// Run `f` in a child; its `Err` text (or a panic) fails the parent.
    /// The child never returns into the test harness: it always `_exit`s.
    pub fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let (rd, wr) = cloexec_pipe()?;
        // SAFETY: the child only runs `f` (simple syscalls; glibc keeps
        // malloc usable after fork) and then _exits.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                drop(rd);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .unwrap_or_else(|_| Err("child panicked".into()));
                let code = match result {
                    Ok(()) => 0,
                    Err(msg) => {
                        let _ = std::fs::File::from(wr).write_all(msg.as_bytes());
                        1
                    }
                };
                // SAFETY: _exit skips atexit handlers and the harness' state.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(wr);
                let mut msg = String::new();
                let _ = std::fs::File::from(rd).read_to_string(&mut msg);
                match waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
                    WaitStatus::Exited(_, 0) => Ok(()),
                    WaitStatus::Exited(_, code) if msg.is_empty() => {
                        Err(format!("child exited with {code}"))
                    }
                    WaitStatus::Exited(..) => Err(msg),
                    other => Err(format!("child ended with {other:?}")),
                }
            }
        }
    }

    /// Like [`in_child`], for a child that replaces itself with exec: returns
    /// the exit code.
    pub fn exit_code_of(f: impl FnOnce() -> Result<(), String>) -> Result<i32, String> {
        let (rd, wr) = cloexec_pipe()?;
        // SAFETY: as in in_child.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                drop(rd);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .unwrap_or_else(|_| Err("child panicked".into()));
                let msg = match result {
                    Ok(()) => "child returned without exec".to_string(),
                    Err(msg) => msg,
                };
                let _ = std::fs::File::from(wr).write_all(msg.as_bytes());
                // SAFETY: as in in_child.
                unsafe { libc::_exit(120) }
            }
            ForkResult::Parent { child } => {
                drop(wr);
                let mut msg = String::new();
                let _ = std::fs::File::from(rd).read_to_string(&mut msg);
                match waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
                    _ if !msg.is_empty() => Err(msg),
                    WaitStatus::Exited(_, code) => Ok(code),
                    other => Err(format!("child ended with {other:?}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_child::{exit_code_of, in_child};
    use super::*;
    use std::os::fd::AsRawFd;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn rlimit(kind: &str, soft: u64, hard: u64) -> Rlimit {
        Rlimit {
            kind: kind.into(),
            soft,
            hard,
        }
    }

    /// Drop CAP_SYS_RESOURCE from the effective set, so the checks below
    /// behave the same on machines that have it.
    fn drop_sys_resource() -> Result<(), String> {
        let (eff, prm, inh) = crate::capabilities::current().map_err(|e| e.to_string())?;
        let sets = crate::capabilities::CapabilitySets {
            effective: eff & !(1 << 24),
            permitted: prm & !(1 << 24),
            inheritable: inh,
            ..Default::default()
        };
        crate::capabilities::apply(&sets).map_err(|e| e.to_string())
    }

    #[test]
    fn all_sixteen_rlimit_names_resolve() {
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_resource("RLIMIT_RTTIME"), Some(libc::RLIMIT_RTTIME));
        assert_eq!(rlimit_resource("RLIMIT_CPU"), Some(libc::RLIMIT_CPU));
        assert_eq!(rlimit_resource("NOFILE"), None);
        assert_eq!(rlimit_resource("rlimit_nofile"), None);
        let mut resources: Vec<i64> = RLIMITS.iter().map(|(_, r)| i64::from(*r)).collect();
        resources.sort_unstable();
        assert_eq!(resources, (0..16).collect::<Vec<i64>>());
    }

    #[test]
    fn cloexec_ranges_skip_stdio_preserved_and_kept_fds() {
        assert_eq!(cloexec_ranges(3, &[]), vec![(3, u32::MAX)]);
        assert_eq!(cloexec_ranges(0, &[]), vec![(3, u32::MAX)]);
        // --preserve-fds 2: 3 and 4 stay.
        assert_eq!(cloexec_ranges(5, &[]), vec![(5, u32::MAX)]);
        assert_eq!(
            cloexec_ranges(3, &[7, 5, 7, 1, 6]),
            vec![(3, 4), (8, u32::MAX)]
        );
        assert_eq!(cloexec_ranges(3, &[3]), vec![(4, u32::MAX)]);
    }

    #[test]
    fn cloexec_marks_only_fds_not_kept() {
        in_child(|| {
            let files: Vec<std::fs::File> = (0..4)
                .map(|_| std::fs::File::open("/dev/null"))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
            // std opens with O_CLOEXEC; clear it to see the call set it.
            for fd in &fds {
                nix::fcntl::fcntl(
                    *fd,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )
                .map_err(|e| e.to_string())?;
            }
            mark_fds_cloexec(fds[0] + 1, &[fds[2]]).map_err(|e| e.to_string())?;
            let cloexec = |fd: i32| -> Result<bool, String> {
                let f = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
                    .map_err(|e| e.to_string())?;
                Ok(f & libc::FD_CLOEXEC != 0)
            };
            let got: Vec<bool> = fds
                .iter()
                .map(|fd| cloexec(*fd))
                .collect::<Result<_, _>>()?;
            if got != [false, true, false, true] {
                return Err(format!(
                    "cloexec flags of {fds:?}: expected [false, true, false, true], got {got:?}"
                ));
            }
            if cloexec(0)? || cloexec(2)? {
                return Err("stdio was marked close-on-exec".into());
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn rlimits_are_set_and_read_back() {
        in_child(|| {
            let cur = getrlimit(libc::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
            let hard = cur.rlim_max.min(4096);
            set_rlimits(&[
                rlimit("RLIMIT_NOFILE", 100, hard),
                rlimit("RLIMIT_CORE", 0, 0),
            ])
            .map_err(|e| e.to_string())?;
            let got = getrlimit(libc::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
            if (got.rlim_cur, got.rlim_max) != (100, hard) {
                return Err(format!(
                    "RLIMIT_NOFILE expected 100/{hard}, got {}/{}",
                    got.rlim_cur, got.rlim_max
                ));
            }
            let core = getrlimit(libc::RLIMIT_CORE).map_err(|e| e.to_string())?;
            if (core.rlim_cur, core.rlim_max) != (0, 0) {
                return Err(format!(
                    "RLIMIT_CORE expected 0/0, got {}/{}",
                    core.rlim_cur, core.rlim_max
                ));
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn rlimit_above_hard_limit_says_it_needs_cap_sys_resource() {
        in_child(|| {
            if is_root() {
                drop_sys_resource()?;
            }
            set_rlimits(&[rlimit("RLIMIT_NOFILE", 512, 1024)]).map_err(|e| e.to_string())?;
            let err = set_rlimits(&[rlimit("RLIMIT_NOFILE", 1048576, 1048576)])
                .err()
                .ok_or("raising the hard limit succeeded")?
                .to_string();
            let want = "set rlimit RLIMIT_NOFILE to soft 1048576 hard 1048576: hard limit above the current 1024 needs CAP_SYS_RESOURCE: Operation not permitted";
            if !err.starts_with(want) {
                return Err(format!("expected {want:?}, got {err:?}"));
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn oom_score_adj_raise_works_and_lowering_says_why_it_fails() {
        in_child(|| {
            if is_root() {
                drop_sys_resource()?;
            }
            let read = || -> Result<i32, String> {
                std::fs::read_to_string("/proc/self/oom_score_adj")
                    .map_err(|e| e.to_string())?
                    .trim()
                    .parse::<i32>()
                    .map_err(|e| e.to_string())
            };
            let target = (read()? + 100).min(1000);
            set_oom_score_adj(target).map_err(|e| e.to_string())?;
            if read()? != target {
                return Err(format!("oom_score_adj expected {target}, got {}", read()?));
            }
            let err = set_oom_score_adj(-1000)
                .err()
                .ok_or("lowering to -1000 succeeded without CAP_SYS_RESOURCE")?
                .to_string();
            if !err.contains("needs CAP_SYS_RESOURCE")
                || !err.starts_with("set oom_score_adj to -1000")
            {
                return Err(format!("unclear error: {err}"));
            }
            Ok(())
        })
        .expect("child");
        assert!(set_oom_score_adj(1001).is_err());
    }

    #[test]
    fn set_identity_changes_uid_gid_and_groups() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        in_child(|| {
            let user = User {
                uid: 1000,
                gid: 1001,
                umask: Some(0o077),
                additional_gids: vec![1002, 1003],
            };
            set_identity(&user).map_err(|e| e.to_string())?;
            set_umask(&user);
            let ids = nix::unistd::getresuid().map_err(|e| e.to_string())?;
            let gids = nix::unistd::getresgid().map_err(|e| e.to_string())?;
            let groups = nix::unistd::getgroups().map_err(|e| e.to_string())?;
            let groups: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
            let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty()).bits();
            let got = (
                ids.real.as_raw(),
                ids.effective.as_raw(),
                ids.saved.as_raw(),
                gids.real.as_raw(),
                gids.effective.as_raw(),
                gids.saved.as_raw(),
                groups,
                mask,
            );
            let want = (1000, 1000, 1000, 1001, 1001, 1001, vec![1002, 1003], 0o077);
            if got != want {
                return Err(format!("expected {want:?}, got {got:?}"));
            }
            // Without caps now, going back to root must fail with a clear error.
            let err = set_identity(&User::default())
                .err()
                .ok_or("became root again")?;
            if !err
                .to_string()
                .starts_with("setgroups []: Operation not permitted")
            {
                return Err(format!("unclear error: {err}"));
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn find_executable_searches_the_container_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let plain = bin.join("plain");
        std::fs::write(&plain, "data").expect("write");
        std::fs::create_dir(bin.join("adir")).expect("mkdir");
        let env = vec![
            "HOME=/".to_string(),
            format!("PATH=/nonexistent:{}", bin.display()),
        ];

        let found = find_executable("tool", &env).expect("tool is in PATH");
        assert_eq!(found.to_str().ok(), tool.to_str());

        let err = find_executable("nosuch", &env).unwrap_err().to_string();
        assert_eq!(err, r#"exec: "nosuch": executable file not found in $PATH"#);
        // Not executable, or a directory: not a match.
        assert!(find_executable("plain", &env).is_err());
        assert!(find_executable("adir", &env).is_err());

        // A name with a slash is used as is.
        let abs = tool.to_str().expect("utf-8 temp path");
        assert_eq!(
            find_executable(abs, &[]).expect("abs").to_str().ok(),
            Some(abs)
        );
        let err = find_executable(plain.to_str().expect("utf-8"), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "error was: {err}");
        let err = find_executable("/nonexistent/x", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(r#"exec: "/nonexistent/x": stat /nonexistent/x: "#),
            "error was: {err}"
        );

        // No PATH in the environment: the default one.
        assert_eq!(
            find_executable("sh", &[])
                .expect("sh")
                .to_str()
                .ok()
                .map(|s| s.ends_with("/sh")),
            Some(true)
        );
        assert!(find_executable("", &env).is_err());
    }

    #[test]
    fn exec_refuses_nul_bytes_and_reports_the_path() {
        let sh = c"/bin/sh";
        let err = exec(sh, &["sh".into(), "a\0b".into()], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "exec /bin/sh: args[1] contains a NUL byte");
        let err = exec(sh, &["sh".into()], &["A=\0".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "exec /bin/sh: env[0] contains a NUL byte");
        let err = exec(c"/nonexistent", &["x".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("exec /nonexistent: "), "error was: {err}");
    }

    #[test]
    fn exec_runs_the_program_with_args_and_env() {
        let code = exit_code_of(|| {
            let path = find_executable("sh", &[]).map_err(|e| e.to_string())?;
            let args = ["sh".into(), "-c".into(), "exit $CODE".into()];
            exec(&path, &args, &["CODE=7".into()]).map_err(|e| e.to_string())?;
            Ok(())
        })
        .expect("child");
        assert_eq!(code, 7, "the shell should exit with $CODE");
    }

    #[test]
    fn io_priority_values_and_errors() {
        let p = |class: &str, priority| IoPriority {
            class: class.into(),
            priority,
        };
        assert_eq!(
            ioprio_value(&p("IOPRIO_CLASS_BE", 4)).ok(),
            Some((2 << 13) | 4)
        );
        assert_eq!(ioprio_value(&p("IOPRIO_CLASS_IDLE", 0)).ok(), Some(3 << 13));
        assert!(ioprio_value(&p("IOPRIO_CLASS_BE", 8)).is_err());
        let err = ioprio_value(&p("BE", 0)).unwrap_err().to_string();
        assert!(
            err.starts_with("unknown io priority class \"BE\""),
            "error was: {err}"
        );
        in_child(|| {
            set_io_priority(&p("IOPRIO_CLASS_BE", 6)).map_err(|e| e.to_string())?;
            // SAFETY: ioprio_get takes integers only.
            let got = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
            if got != (2 << 13) | 6 {
                return Err(format!(
                    "ioprio expected {:#x}, got {got:#x}",
                    (2 << 13) | 6
                ));
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn personality_linux32_is_set_and_unknown_values_refused() {
        let p = |domain: &str, flags: &[&str]| Personality {
            domain: domain.into(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
        };
        assert!(set_personality(&p("BSD", &[])).is_err());
        assert!(set_personality(&p("LINUX", &["X"])).is_err());
        in_child(|| {
            set_personality(&p("LINUX32", &[])).map_err(|e| e.to_string())?;
            // SAFETY: 0xffffffff queries the persona without changing it.
            let got = unsafe { libc::personality(0xffff_ffff) };
            if got & 0xff != 0x0008 {
                return Err(format!("persona expected LINUX32, got {got:#x}"));
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn no_new_privs_is_set() {
        in_child(|| {
            set_no_new_privs().map_err(|e| e.to_string())?;
            // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
            let got = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            if got != 1 {
                return Err(format!("no_new_privs expected 1, got {got}"));
            }
            Ok(())
        })
        .expect("child");
    }
}
