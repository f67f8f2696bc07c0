//! `linux.seccomp`: compile the OCI profile into a BPF program, then load it.
//!
//! Compiling and loading are split, as crun does: [`compile`] runs libseccomp
//! in the runtime (before fork, so a bad profile fails early and the result
//! could be cached keyed by the profile), and exports plain BPF
//! instructions; [`load`] in the container's init is one `seccomp(2)` call
//! with no library code and no allocation. Loading with the raw syscall also
//! lets us pass the filter flags (TSYNC, LOG, SPEC_ALLOW) directly.
//!
//! Semantics follow runc, since profiles are written for it (docker's and
//! podman's default profiles, Kubernetes' RuntimeDefault):
//! - a syscall name unknown on this architecture is skipped (the profiles
//!   list syscalls of every architecture), and reported in
//!   [`SeccompProgram::skipped_syscalls`];
//! - a rule whose action equals the default action is skipped (libseccomp
//!   refuses it, and it changes nothing);
//! - `args` with two conditions on the same argument index become one rule
//!   per condition (OR); otherwise all conditions go in one rule (AND);
//! - the filter does not set no_new_privs: the caller decides, and loads
//!   early with CAP_SYS_ADMIN when `noNewPrivileges` is false;
//! - `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE` without `errnoRet` use EPERM.
//!
//! Unknown action, operator, architecture or flag names are errors: a
//! profile we cannot apply as written must not run as something weaker.
//! Not done yet (runc does them): the seccomp notify listener
//! (`SCMP_ACT_NOTIFY`, `listenerPath`) is refused with an error, and the
//! ENOSYS patching of syscalls newer than the profile is not applied.

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::ScmpSyscall;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};

use crate::spec::{Seccomp, SeccompArg};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp notify (listenerPath) is not supported yet: {field}")]
    NotifyUnsupported { field: String },
    #[error("unknown seccomp action {value:?} in {field}")]
    UnknownAction { field: String, value: String },
    #[error("unknown seccomp operator {value:?} in {field}")]
    UnknownOperator { field: String, value: String },
    #[error("unknown seccomp architecture {value:?} in {field}")]
    UnknownArch { field: String, value: String },
    #[error("unknown seccomp flag {value:?} in {field}")]
    UnknownFlag { field: String, value: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("seccomp {what}: {source}")]
    Library {
        what: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp export bpf: {0}")]
    Export(std::io::Error),
    #[error("load seccomp filter ({instructions} instructions, flags {flags:#x}): {hint}{source}")]
    Load {
        instructions: usize,
        flags: u32,
        hint: &'static str,
        source: std::io::Error,
    },
    #[error(
        "load seccomp filter with SECCOMP_FILTER_FLAG_TSYNC: thread {0} could not be synchronized"
    )]
    Tsync(i64),
}

fn library(
    what: impl Into<String>,
) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Library { what, source }
}

/// A compiled filter: BPF instructions plus the `seccomp(2)` flags.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    filter: Vec<libc::sock_filter>,
    flags: u32,
    skipped: Vec<String>,
}

impl SeccompProgram {
    /// The number of BPF instructions.
    pub fn instructions(&self) -> usize {
        self.filter.len()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits passed at load.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Syscall names of the profile unknown on this architecture (skipped).
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }
}

const ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

const OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const ARCHS: [(&str, ScmpArch); 19] = [
    ("SCMP_ARCH_X86", ScmpArch::X86),
    ("SCMP_ARCH_X86_64", ScmpArch::X8664),
    ("SCMP_ARCH_X32", ScmpArch::X32),
    ("SCMP_ARCH_ARM", ScmpArch::Arm),
    ("SCMP_ARCH_AARCH64", ScmpArch::Aarch64),
    ("SCMP_ARCH_MIPS", ScmpArch::Mips),
    ("SCMP_ARCH_MIPS64", ScmpArch::Mips64),
    ("SCMP_ARCH_MIPS64N32", ScmpArch::Mips64N32),
    ("SCMP_ARCH_MIPSEL", ScmpArch::Mipsel),
    ("SCMP_ARCH_MIPSEL64", ScmpArch::Mipsel64),
    ("SCMP_ARCH_MIPSEL64N32", ScmpArch::Mipsel64N32),
    ("SCMP_ARCH_PPC", ScmpArch::Ppc),
    ("SCMP_ARCH_PPC64", ScmpArch::Ppc64),
    ("SCMP_ARCH_PPC64LE", ScmpArch::Ppc64Le),
    ("SCMP_ARCH_S390", ScmpArch::S390),
    ("SCMP_ARCH_S390X", ScmpArch::S390X),
    ("SCMP_ARCH_PARISC", ScmpArch::Parisc),
    ("SCMP_ARCH_PARISC64", ScmpArch::Parisc64),
    ("SCMP_ARCH_RISCV64", ScmpArch::Riscv64),
];

const WAIT_KILLABLE_RECV: &str = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";

const FLAGS: [(&str, u32); 4] = [
    (
        "SECCOMP_FILTER_FLAG_TSYNC",
        libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
    ),
    (
        "SECCOMP_FILTER_FLAG_LOG",
        libc::SECCOMP_FILTER_FLAG_LOG as u32,
    ),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
    ),
    (
        WAIT_KILLABLE_RECV,
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32,
    ),
];

/// Action names accepted in a profile (for `features`). `SCMP_ACT_NOTIFY`
/// is listed because it parses, but [`compile`] refuses it for now.
pub fn supported_actions() -> Vec<&'static str> {
    // SCMP_ACT_NOTIFY is parsed but refused (no listener support yet).
    ACTIONS
        .iter()
        .copied()
        .filter(|a| *a != "SCMP_ACT_NOTIFY")
        .collect()
}

/// The version of the libseccomp linked in, e.g. "2.5.4".
pub fn library_version() -> Option<String> {
    libseccomp::ScmpVersion::current()
        .ok()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
}

/// Argument comparison operators (for `features`).
pub fn supported_operators() -> Vec<&'static str> {
    OPERATORS.to_vec()
}

/// Architecture names (for `features`).
pub fn supported_archs() -> Vec<&'static str> {
    ARCHS.iter().map(|(n, _)| *n).collect()
}

/// Filter flag names (for `features`).
pub fn supported_flags() -> Vec<&'static str> {
    FLAGS.iter().map(|(n, _)| *n).collect()
}

fn errno_value(errno_ret: Option<u32>, field: &str) -> Result<i32, SeccompError> {
    match errno_ret {
        None => Ok(libc::EPERM),
        Some(v) if v <= u32::from(u16::MAX) => Ok(v as i32),
        Some(v) => Err(SeccompError::Invalid {
            field: field.to_string(),
            message: format!("errnoRet {v} is above 65535"),
        }),
    }
}

/// The libseccomp action of an OCI action name; `field` names it in errors.
fn parse_action(
    name: &str,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<ScmpAction, SeccompError> {
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno_value(errno_ret, field)?),
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno_value(errno_ret, field)? as u16),
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(SeccompError::NotifyUnsupported {
                field: format!("{field} is SCMP_ACT_NOTIFY"),
            })
        }
        other => {
            return Err(SeccompError::UnknownAction {
                field: field.to_string(),
                value: other.to_string(),
            })
        }
    })
}

fn parse_condition(a: &SeccompArg, field: &str) -> Result<ScmpArgCompare, SeccompError> {
    if a.index >= 6 {
        return Err(SeccompError::Invalid {
            field: format!("{field}.index"),
            message: format!("argument index {} is above 5", a.index),
        });
    }
    let (op, datum) = match a.op.as_str() {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, a.value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, a.value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, a.value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, a.value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, a.value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, a.value),
        // As runc: value is the mask, valueTwo the value compared with.
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(a.value), a.value_two),
        other => {
            return Err(SeccompError::UnknownOperator {
                field: format!("{field}.op"),
                value: other.to_string(),
            })
        }
    };
    Ok(ScmpArgCompare::new(a.index, op, datum))
}

/// The `seccomp(2)` flag bits of `flags`.
fn parse_flags(flags: &[String]) -> Result<u32, SeccompError> {
    let mut bits = 0;
    for (i, name) in flags.iter().enumerate() {
        let (_, bit) =
            FLAGS
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| SeccompError::UnknownFlag {
                    field: format!("linux.seccomp.flags[{i}]"),
                    value: name.clone(),
                })?;
        // WAIT_KILLABLE_RECV changes how a notify listener waits; without a
        // listener (refused above) the kernel rejects it, and it means nothing.
        if name != WAIT_KILLABLE_RECV {
            bits |= bit;
        }
    }
    Ok(bits)
}

/// The rules' condition lists for one profile entry: all conditions in one
/// rule, or one rule per condition when an argument index repeats (runc).
fn rule_conditions(
    args: &[SeccompArg],
    field: &str,
) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let conds = args
        .iter()
        .enumerate()
        .map(|(i, a)| parse_condition(a, &format!("{field}.args[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let repeats = args
        .iter()
        .enumerate()
        .any(|(i, a)| args[..i].iter().any(|b| b.index == a.index));
    Ok(if repeats {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

/// Build the libseccomp filter for `s` and export it as BPF.
pub fn compile(s: &Seccomp) -> Result<SeccompProgram, SeccompError> {
    if let Some(path) = &s.listener_path {
        return Err(SeccompError::NotifyUnsupported {
            field: format!("linux.seccomp.listenerPath is {}", path.display()),
        });
    }
    let default = parse_action(
        &s.default_action,
        s.default_errno_ret,
        "linux.seccomp.defaultAction",
    )?;
    let flags = parse_flags(&s.flags)?;
    let mut ctx = ScmpFilterContext::new_filter(default).map_err(library("new filter"))?;
    ctx.set_ctl_nnp(false)
        .map_err(library("unset no_new_privs attribute"))?;
    for (i, name) in s.architectures.iter().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let (_, arch) =
            ARCHS
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| SeccompError::UnknownArch {
                    field: field.clone(),
                    value: name.clone(),
                })?;
        ctx.add_arch(*arch)
            .map_err(library(format!("add {field} {name}")))?;
    }
    let mut skipped = Vec::new();
    for (i, rule) in s.syscalls.iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let action = parse_action(&rule.action, rule.errno_ret, &format!("{field}.action"))?;
        let conditions = rule_conditions(&rule.args, &field)?;
        if action == default {
            continue;
        }
        for name in &rule.names {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                skipped.push(name.clone());
                continue;
            };
            for conds in &conditions {
                ctx.add_rule_conditional(action, syscall, conds)
                    .map_err(library(format!("add rule for {name} ({field})")))?;
            }
        }
    }
    skipped.sort();
    skipped.dedup();
    Ok(SeccompProgram {
        filter: export_bpf(&ctx)?,
        flags,
        skipped,
    })
}

/// libseccomp 2.5 exports BPF only to a file descriptor: use a memfd.
fn export_bpf(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // SAFETY: the name is a NUL-terminated literal; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SeccompError::Export(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned by nothing else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&mut file).map_err(library("export bpf"))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(SeccompError::Export)?;
    const SIZE: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % SIZE != 0 || bytes.is_empty() {
        return Err(SeccompError::Export(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} bytes is not a whole number of instructions",
                bytes.len()
            ),
        )));
    }
    Ok(bytes
        .chunks_exact(SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Install the filter on the calling thread (every thread with TSYNC).
/// Needs no_new_privs set, or CAP_SYS_ADMIN.
pub fn load(p: &SeccompProgram) -> Result<(), SeccompError> {
    let len = libc::c_ushort::try_from(p.filter.len()).map_err(|_| SeccompError::Load {
        instructions: p.filter.len(),
        flags: p.flags,
        hint: "program too long: ",
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let prog = libc::sock_fprog {
        len,
        filter: p.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at p.filter, alive for the call; the kernel copies
    // the instructions and does not write through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc > 0 {
        return Err(SeccompError::Tsync(rc));
    }
    if rc < 0 {
        let source = std::io::Error::last_os_error();
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) => "needs no_new_privs or CAP_SYS_ADMIN: ",
            Some(libc::EINVAL) => "a flag or the program is not supported by this kernel: ",
            Some(libc::ENOMEM) => "program too long or too many filters: ",
            _ => "",
        };
        return Err(SeccompError::Load {
            instructions: p.filter.len(),
            flags: p.flags,
            hint,
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::test_child::in_child;

    /// Syscalls a docker-like default profile allows (podman's list, which
    /// names syscalls of several architectures).
    const ALLOWED: &str = "
_llseek _newselect accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 clone clone3 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsconfig fsetxattr fsmount fsopen fspick fstat fstat64 fstatat64 fstatfs fstatfs64
fsync ftruncate ftruncate64 futex futex_time64 futimesat get_mempolicy get_robust_list
get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname
getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_setup io_submit ioctl
ioprio_get ioprio_set ipc keyctl kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
lremovexattr lseek lsetxattr lstat lstat64 madvise mbind membarrier memfd_create memfd_secret
mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mount mount_setattr
move_mount mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap name_to_handle_at nanosleep newfstatat open open_tree openat openat2 pause
pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 pivot_root pkey_alloc pkey_free
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease
process_vm_readv process_vm_writev pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2
read readahead readdir readlink readlinkat readv reboot recv recvfrom recvmmsg recvmmsg_time64
recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_mempolicy set_robust_list
set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setns setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaction sigaltstack signal signalfd
signalfd4 sigpending sigprocmask sigreturn sigsuspend socketcall socketpair splice stat stat64
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs syscall sysinfo syslog tee
tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 timerfd timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask umount
umount2 uname unlink unlinkat unshare utime utimensat utimensat_time64 utimes vfork wait4 waitid
waitpid write writev
nosuch_syscall_berth another_nosuch_syscall";

    /// Syscalls it refuses explicitly with EPERM (the default action too).
    const DENIED: &str = "
bdflush io_pgetevents kexec_file_load kexec_load migrate_pages move_pages nfsservctl nice
oldfstat oldlstat oldolduname oldstat olduname pciconfig_iobase pciconfig_read pciconfig_write
sgetmask ssetmask swapcontext swapoff swapon sysfs uselib userfaultfd ustat vm86 vm86old
vmsplice";

    fn names(list: &str) -> String {
        let quoted: Vec<String> = list.split_whitespace().map(|n| format!("{n:?}")).collect();
        format!("[{}]", quoted.join(","))
    }

    /// An OCI `linux.seccomp` as docker/containerd write it for x86_64.
    fn docker_like_profile() -> Seccomp {
        let json = format!(
            r#"{{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
              {{"names": {deny}, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}},
              {{"names": {allow}, "action": "SCMP_ACT_ALLOW"}},
              {{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}}]}},
              {{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}}]}},
              {{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}}]}},
              {{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                "args": [{{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}}]}},
              {{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}},
              {{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                "args": [{{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}},
                         {{"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}}]}},
              {{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}}]}},
              {{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [{{"index": 1, "value": 1, "op": "SCMP_CMP_GE"}},
                         {{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}}]}}
            ]
          }}"#,
            deny = names(DENIED),
            allow = names(
                ALLOWED
                    .replace(" clone3 ", " ")
                    .replace(" socket ", " ")
                    .replace(" personality ", " ")
                    .replace(" mknod ", " ")
                    .replace(" mknodat ", " ")
                    .as_str()
            ),
        );
        serde_json::from_str(&json).expect("fixture is valid JSON")
    }

    fn profile(json: &str) -> Seccomp {
        serde_json::from_str(json).expect("valid test JSON")
    }

    #[test]
    fn docker_like_profile_compiles_and_skips_unknown_syscalls() {
        let p = compile(&docker_like_profile()).expect("profile compiles");
        assert!(
            p.instructions() > 100,
            "only {} instructions",
            p.instructions()
        );
        assert_eq!(p.flags(), libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32);
        let skipped = p.skipped_syscalls();
        assert!(
            skipped.contains(&"nosuch_syscall_berth".to_string()),
            "skipped: {skipped:?}"
        );
        assert!(
            !skipped.contains(&"read".to_string()),
            "skipped: {skipped:?}"
        );
        // Names of other architectures resolve (libseccomp knows them).
        assert!(
            !skipped.contains(&"_llseek".to_string()),
            "skipped: {skipped:?}"
        );
    }

    #[test]
    fn unknown_names_are_errors_naming_field_and_value() {
        let cases = [
            (
                r#"{"defaultAction":"SCMP_ACT_FOO"}"#,
                "unknown seccomp action \"SCMP_ACT_FOO\" in linux.seccomp.defaultAction",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_Z80"]}"#,
                "unknown seccomp architecture \"SCMP_ARCH_Z80\" in linux.seccomp.architectures[1]",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_BOGUS"]}"#,
                "unknown seccomp flag \"SECCOMP_FILTER_FLAG_BOGUS\" in linux.seccomp.flags[0]",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO"},
                {"names":["write"],"action":"SCMP_ACT_NOPE"}]}"#,
                "unknown seccomp action \"SCMP_ACT_NOPE\" in linux.seccomp.syscalls[1].action",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#,
                "unknown seccomp operator \"SCMP_CMP_XX\" in linux.seccomp.syscalls[0].args[0].op",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "linux.seccomp.syscalls[0].args[0].index: argument index 6 is above 5",
            ),
        ];
        for (json, want) in cases {
            let err = compile(&profile(json)).unwrap_err().to_string();
            assert_eq!(err, want, "for profile {json}");
        }
    }

    #[test]
    fn notify_is_refused_not_ignored() {
        let err = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("seccomp notify (listenerPath) is not supported yet"),
            "{err}"
        );
        let err = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("seccomp notify (listenerPath) is not supported yet"),
            "{err}"
        );
        assert!(err.contains("linux.seccomp.syscalls[0].action"), "{err}");
    }

    #[test]
    fn repeated_argument_index_becomes_one_rule_per_condition() {
        let args: Vec<SeccompArg> = serde_json::from_str(
            r#"[{"index":1,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":3,"op":"SCMP_CMP_EQ"}]"#,
        )
        .expect("json");
        assert_eq!(rule_conditions(&args, "f").expect("ok").len(), 2);
        let args: Vec<SeccompArg> = serde_json::from_str(
            r#"[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":3,"op":"SCMP_CMP_EQ"}]"#,
        )
        .expect("json");
        let rules = rule_conditions(&args, "f").expect("ok");
        assert_eq!((rules.len(), rules[0].len()), (1, 2));
        assert_eq!(rule_conditions(&[], "f").expect("ok"), vec![Vec::new()]);
    }

    #[test]
    fn flags_and_feature_lists() {
        assert_eq!(
            parse_flags(&[
                "SECCOMP_FILTER_FLAG_TSYNC".into(),
                "SECCOMP_FILTER_FLAG_LOG".into()
            ])
            .ok(),
            Some(3)
        );
        assert_eq!(parse_flags(&[WAIT_KILLABLE_RECV.into()]).ok(), Some(0));
        assert!(supported_archs().contains(&"SCMP_ARCH_AARCH64"));
        assert!(supported_actions().contains(&"SCMP_ACT_KILL_PROCESS"));
        assert_eq!(supported_operators().len(), 7);
        assert_eq!(supported_flags().len(), 4);
    }

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    }

    #[test]
    fn errno_rule_makes_getpid_and_mkdir_fail_with_eperm() {
        let p = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getpid","mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .expect("compiles");
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("sub");
        in_child(|| {
            crate::process::set_no_new_privs().map_err(|e| e.to_string())?;
            load(&p).map_err(|e| e.to_string())?;
            // SAFETY: getpid takes no arguments.
            let got = errno_of(unsafe { libc::syscall(libc::SYS_getpid) });
            if got != libc::EPERM {
                return Err(format!("getpid: expected EPERM, got errno {got}"));
            }
            match std::fs::create_dir(&target) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
                other => Err(format!("mkdir: expected EPERM, got {other:?}")),
            }
        })
        .expect("child");
        assert!(!target.exists(), "mkdir must not have happened");
    }

    #[test]
    fn docker_like_profile_loads_with_cap_sys_admin_and_filters() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (CAP_SYS_ADMIN to load without no_new_privs)");
            return;
        }
        let p = compile(&docker_like_profile()).expect("compiles");
        in_child(|| {
            load(&p).map_err(|e| e.to_string())?;
            // Each errno is read right after its call: errno_of wraps both.
            // SAFETY: each raw syscall below takes integers or a C string.
            let checks: [(&str, i32, i32); 7] = unsafe {
                [
                    ("getpid", errno_of(libc::syscall(libc::SYS_getpid)), 0),
                    (
                        "acct(NULL)",
                        errno_of(libc::syscall(libc::SYS_acct, 0usize)),
                        libc::EPERM,
                    ),
                    (
                        "personality(query)",
                        errno_of(libc::syscall(libc::SYS_personality, 0xffff_ffffu64)),
                        0,
                    ),
                    (
                        "personality(1)",
                        errno_of(libc::syscall(libc::SYS_personality, 1u64)),
                        libc::EPERM,
                    ),
                    (
                        "clone3",
                        errno_of(libc::syscall(libc::SYS_clone3, 0usize, 0usize)),
                        libc::ENOSYS,
                    ),
                    (
                        "socket(netlink audit)",
                        errno_of(libc::syscall(libc::SYS_socket, 16, libc::SOCK_RAW, 9)),
                        libc::EINVAL,
                    ),
                    (
                        "mknod(mode 0)",
                        errno_of(libc::syscall(
                            libc::SYS_mknod,
                            c"/nonexistent/x".as_ptr(),
                            0,
                            0,
                        )),
                        libc::EACCES,
                    ),
                ]
            };
            for (what, got, want) in checks {
                if got != want {
                    return Err(format!("{what}: expected errno {want}, got {got}"));
                }
            }
            Ok(())
        })
        .expect("child");
    }

    #[test]
    fn load_without_privilege_says_what_it_needs() {
        let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["acct"],"action":"SCMP_ACT_ERRNO"}]}"#))
            .expect("compiles");
        in_child(|| {
            if nix::unistd::geteuid().is_root() {
                let sets = crate::capabilities::CapabilitySets::default();
                crate::capabilities::apply(&sets).map_err(|e| e.to_string())?;
            }
            let err = load(&p)
                .err()
                .ok_or("loaded without no_new_privs or CAP_SYS_ADMIN")?;
            let err = err.to_string();
            if !err.contains("needs no_new_privs or CAP_SYS_ADMIN") {
                return Err(format!("unclear error: {err}"));
            }
            Ok(())
        })
        .expect("child");
    }
}

/// The on-disk cache of compiled filters (crun does the same): compiling a
/// profile like podman's default costs far more than the rest of a container
/// start, and almost every container of a host uses the same few profiles.
///
/// A cache file holds the exact key it was made for — the profile as JSON,
/// the kernel release and the libseccomp version — and is used only when
/// that key matches byte for byte, so a hash collision or a stale file can
/// never load the wrong filter. Files are written under a temporary name
/// and renamed; a broken or unreadable file is simply recompiled.
pub mod cache {
    use std::hash::{Hash, Hasher};
    use std::io::Write;
    use std::path::Path;

    use super::{compile, SeccompError, SeccompProgram};
    use crate::spec::Seccomp;

    const MAGIC: &[u8; 8] = b"BERTHSC1";
    /// Past this many profiles the cache is emptied before it grows.
    const MAX_ENTRIES: usize = 64;

    /// `compile`, through the cache in `dir` (created if missing).
    pub fn compile_cached(s: &Seccomp, dir: &Path) -> Result<SeccompProgram, SeccompError> {
        let key = key(s);
        let path = dir.join(file_name(&key));
        if let Some(p) = std::fs::read(&path).ok().and_then(|d| decode(&d, &key)) {
            return Ok(p);
        }
        let p = compile(s)?;
        // Best effort: a cache that cannot be written only costs time.
        let _ = store(dir, &path, &key, &p);
        Ok(p)
    }

    fn key(s: &Seccomp) -> Vec<u8> {
        let mut key = serde_json::to_vec(s).unwrap_or_default();
        key.push(0);
        key.extend_from_slice(
            nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        key.push(0);
        key.extend_from_slice(super::library_version().unwrap_or_default().as_bytes());
        key
    }

    fn file_name(key: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        format!("{:016x}.bpf", h.finish())
    }

    fn encode(key: &[u8], p: &SeccompProgram) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + key.len() + p.filter.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&p.flags.to_le_bytes());
        out.extend_from_slice(&(p.filter.len() as u32).to_le_bytes());
        for ins in &p.filter {
            out.extend_from_slice(&ins.code.to_le_bytes());
            out.push(ins.jt);
            out.push(ins.jf);
            out.extend_from_slice(&ins.k.to_le_bytes());
        }
        let skipped = p.skipped.join("\n");
        out.extend_from_slice(&(skipped.len() as u32).to_le_bytes());
        out.extend_from_slice(skipped.as_bytes());
        out
    }

    /// The program in `data`, if `data` is a well-formed file for `key`.
    fn decode(data: &[u8], key: &[u8]) -> Option<SeccompProgram> {
        let mut rest = data.strip_prefix(MAGIC.as_slice())?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
            rest = tail;
            Some(head)
        };
        let u32_at = |b: &[u8]| b.try_into().ok().map(u32::from_le_bytes);
        let key_len = u32_at(take(4)?)? as usize;
        if take(key_len)? != key {
            return None;
        }
        let flags = u32_at(take(4)?)?;
        let count = u32_at(take(4)?)? as usize;
        let mut filter = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let ins = take(8)?;
            filter.push(libc::sock_filter {
                code: u16::from_le_bytes([ins[0], ins[1]]),
                jt: ins[2],
                jf: ins[3],
                k: u32::from_le_bytes([ins[4], ins[5], ins[6], ins[7]]),
            });
        }
        let skipped_len = u32_at(take(4)?)? as usize;
        let skipped = std::str::from_utf8(take(skipped_len)?).ok()?;
        Some(SeccompProgram {
            filter,
            flags,
            skipped: skipped
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        })
    }

    fn store(dir: &Path, path: &Path, key: &[u8], p: &SeccompProgram) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if std::fs::read_dir(dir)?.count() >= MAX_ENTRIES {
            for e in std::fs::read_dir(dir)?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&encode(key, p))?;
        drop(f);
        std::fs::rename(&tmp, path)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn profile() -> Seccomp {
            serde_json::from_str(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                    "syscalls":[{"names":["mkdir","nosuchcall"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
            )
            .expect("profile")
        }

        #[test]
        fn a_cached_program_equals_a_fresh_one() {
            let dir = tempfile::tempdir().expect("tempdir");
            let fresh = compile(&profile()).expect("compile");
            let first = compile_cached(&profile(), dir.path()).expect("first");
            let second = compile_cached(&profile(), dir.path()).expect("from cache");
            for p in [&first, &second] {
                assert_eq!(p.flags, fresh.flags);
                assert_eq!(p.skipped, fresh.skipped);
                assert_eq!(p.filter.len(), fresh.filter.len());
                for (a, b) in p.filter.iter().zip(&fresh.filter) {
                    assert_eq!((a.code, a.jt, a.jf, a.k), (b.code, b.jt, b.jf, b.k));
                }
            }
            assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        }

        #[test]
        fn a_file_for_another_key_or_a_broken_file_is_not_used() {
            let p = compile(&profile()).expect("compile");
            let data = encode(b"key-a", &p);
            assert!(decode(&data, b"key-a").is_some());
            assert!(decode(&data, b"key-b").is_none(), "another profile");
            assert!(
                decode(&data[..data.len() - 3], b"key-a").is_none(),
                "truncated"
            );
            assert!(decode(b"garbage", b"key-a").is_none());
        }
    }
}
