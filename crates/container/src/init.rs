//! The container's side: what the cloned init (and a process started by
//! `exec`) does between the clone and `execve` of the user's program.
//!
//! Runs single-threaded in the child, inside the new namespaces. Every
//! error is sent to the runtime as one line over the sync socket, and the
//! child exits; the runtime prints it and undoes the container.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::capabilities::{self, CapabilitySets};
use crate::console;
use crate::error::{errno, io_err, ContainerError, Result};
use crate::hooks;
use crate::namespaces::{self, NamespacePlan};
use crate::process;
use crate::rootfs::{self, RootfsOptions};
use crate::seccomp;
use crate::spec::{NamespaceType, Process, Spec};
use crate::sync::{self, Message};

pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub plan: &'a NamespacePlan,
    pub rootfs: &'a Path,
    pub sync: OwnedFd,
    /// O_PATH fd of the exec fifo (None for `exec`).
    pub fifo: Option<OwnedFd>,
    pub console_socket: Option<&'a Path>,
    pub foreground_terminal: bool,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub id: &'a str,
    /// A two-stage spawn already joined the namespaces and became root.
    pub namespaces_joined: bool,
    /// `linux.seccomp`, compiled by the runtime.
    pub seccomp: Option<seccomp::SeccompProgram>,
}

/// Compiles `linux.seccomp` in the runtime, before any fork, through the
/// cache under the runtime's root (see `seccomp::cache`).
pub(crate) fn compile_seccomp(
    spec: &Spec,
    rt: &crate::Runtime,
) -> Result<Option<seccomp::SeccompProgram>> {
    Ok(match &spec.linux().seccomp {
        Some(s) => Some(seccomp::cache::compile_cached(s, &rt.seccomp_cache_dir())?),
        None => None,
    })
}

/// Entry point of the container's init; never returns.
pub(crate) fn run(args: InitArgs<'_>) -> ! {
    let err = match init(&args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report_and_exit(args.sync.as_fd(), &err)
}

pub(crate) fn report_and_exit(sync: BorrowedFd<'_>, err: &ContainerError) -> ! {
    if sync::send(sync, &Message::Error(err.to_string())).is_err() {
        // The runtime is gone (after `start`): stderr is all we have.
        eprintln!("berth-runtime: {err}");
    }
    // SAFETY: _exit is always safe; skip atexit handlers of the parent's copy.
    unsafe { libc::_exit(1) }
}

fn wait_go(sync: BorrowedFd<'_>) -> Result<String> {
    match sync::recv(sync).map_err(crate::error::sys_err("sync with runtime"))? {
        Some(Message::Go(state)) => Ok(state),
        Some(other) => Err(ContainerError::Init(format!(
            "unexpected message from runtime: {other:?}"
        ))),
        None => Err(ContainerError::Init("runtime went away".into())),
    }
}

fn init(a: &InitArgs<'_>) -> Result<Infallible> {
    let sync = a.sync.as_fd();
    let state_json = wait_go(sync)?;
    if !a.namespaces_joined {
        if a.plan.new_user {
            become_root_in_userns()?;
        }
        a.plan.join_in_child()?;
    }
    if a.plan.new_cgroup {
        namespaces::unshare(libc::CLONE_NEWCGROUP, "cgroup namespace")?;
    }
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(errno("setsid"));
    }
    if !a.no_new_keyring {
        join_session_keyring(a.id)?;
    }
    let console_conn = match a.console_socket {
        Some(path) => Some(console::connect_console_socket(path)?),
        None => None,
    };

    let opts = RootfsOptions {
        no_pivot: a.no_pivot,
        in_user_namespace: a.plan.has(NamespaceType::User),
        new_cgroup_namespace: a.plan.has(NamespaceType::Cgroup),
    };
    rootfs::prepare(a.spec, a.rootfs, &opts)?;
    let hooks = a.spec.hooks.as_ref();
    if hooks.is_some_and(|h| !h.prestart.is_empty() || !h.create_runtime.is_empty()) {
        sync::send(sync, &Message::RunHooks).map_err(crate::error::sys_err("sync"))?;
        match sync::recv(sync).map_err(crate::error::sys_err("sync"))? {
            Some(Message::HooksDone) => {}
            _ => return Err(ContainerError::Init("runtime hooks failed".into())),
        }
    }
    if let Some(h) = hooks {
        hooks::run_hooks(
            "createContainer",
            &h.create_container,
            state_json.as_bytes(),
        )?;
    }
    rootfs::pivot(a.rootfs, a.no_pivot)?;
    set_hostname(a.spec)?;

    let process = a
        .spec
        .process
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("process: missing".into()))?;
    create_cwd(&process.cwd)?;
    if process.terminal {
        let pty = console::new_pty(process.console_size)?;
        console::attach_slave(&pty.slave_path, true)?;
        hand_over_master(
            sync,
            console_conn.as_ref(),
            &pty.master,
            a.foreground_terminal,
        )?;
    }
    drop(console_conn);
    rootfs::finalize(a.spec)?;

    let program = prepare_process(a.spec, process, true, a.seccomp.clone())?;
    // The fifo is reopened through /proc; keep only the fds that must stay.
    let fifo_num = a.fifo.as_ref().map(|f| f.as_raw_fd());
    sync::send(sync, &Message::Ready).map_err(crate::error::sys_err("sync"))?;
    let mut keep: Vec<i32> = fifo_num.into_iter().collect();
    keep.push(sync.as_raw_fd());
    close_all_but(3 + a.preserve_fds as i32, &keep);
    clear_cloexec(3, a.preserve_fds);
    // SAFETY: the sync socket's number is not used afterwards.
    unsafe { libc::close(sync.as_raw_fd()) };

    if let Some(fd) = fifo_num {
        wait_for_start(fd)?;
    }
    if let Some(h) = hooks {
        let created = state_json.replace("\"status\":\"creating\"", "\"status\":\"created\"");
        if let Err(e) = hooks::run_hooks("startContainer", &h.start_container, created.as_bytes()) {
            eprintln!("berth-runtime: {e}");
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(1) }
        }
    }
    program.exec()
}

/// A process ready to exec: everything but the last steps is done.
pub(crate) struct Program {
    path: CString,
    args: Vec<String>,
    env: Vec<String>,
    seccomp_late: Option<seccomp::SeccompProgram>,
    no_new_privs: bool,
}

impl Program {
    pub(crate) fn exec(self) -> Result<Infallible> {
        if self.no_new_privs {
            process::set_no_new_privs()?;
        }
        if let Some(filter) = &self.seccomp_late {
            seccomp::load(filter)?;
        }
        reset_signals();
        Ok(process::exec(&self.path, &self.args, &self.env)?)
    }
}

/// The shared part of init and exec: limits, identity, capabilities,
/// seccomp. Follows runc's order: seccomp is loaded early (while we still
/// hold CAP_SYS_ADMIN) unless no_new_privs allows loading it last. The
/// filter was compiled by the runtime before the fork (`compile_seccomp`),
/// so a bad profile fails before any namespace exists and no libseccomp
/// code runs in the container's process.
pub(crate) fn prepare_process(
    spec: &Spec,
    p: &Process,
    is_init: bool,
    filter: Option<seccomp::SeccompProgram>,
) -> Result<Program> {
    if is_init {
        if let Some(adj) = p.oom_score_adj {
            process::set_oom_score_adj(adj)?;
        }
    }
    process::set_rlimits(&p.rlimits)?;
    if let Some(prio) = &p.io_priority {
        process::set_io_priority(prio)?;
    }
    if let Some(sched) = &p.scheduler {
        crate::scheduler::apply(sched)?;
    }
    if let Some(pers) = &spec.linux().personality {
        process::set_personality(pers)?;
    }
    let arg0 = p
        .args
        .first()
        .ok_or_else(|| ContainerError::Invalid("process.args: empty".into()))?;
    let path = process::find_executable(arg0, &p.env)?;
    let mut seccomp_late = None;
    if let Some(f) = filter {
        if p.no_new_privileges {
            seccomp_late = Some(f);
        } else {
            seccomp::load(&f)?;
        }
    }
    let caps = CapabilitySets::from_spec(p.capabilities.as_ref())?;
    capabilities::drop_bounding(&caps)?;
    capabilities::set_keep_caps(true)?;
    process::set_identity(&p.user)?;
    capabilities::set_keep_caps(false)?;
    let cwd = if p.cwd.as_os_str().is_empty() {
        Path::new("/")
    } else {
        p.cwd.as_path()
    };
    std::env::set_current_dir(cwd).map_err(io_err("chdir to process.cwd", cwd))?;
    capabilities::apply(&caps)?;
    process::set_umask(&p.user);
    Ok(Program {
        path,
        args: p.args.clone(),
        env: p.env.clone(),
        seccomp_late,
        no_new_privs: p.no_new_privileges,
    })
}

pub(crate) fn hand_over_master(
    sync: BorrowedFd<'_>,
    console_conn: Option<&OwnedFd>,
    master: &OwnedFd,
    foreground: bool,
) -> Result<()> {
    if let Some(conn) = console_conn {
        console::send_fd(conn.as_fd(), master.as_fd(), "/dev/ptmx")?;
    } else if foreground {
        sync::send(sync, &Message::PtyMaster).map_err(crate::error::sys_err("sync"))?;
        console::send_fd(sync, master.as_fd(), "/dev/ptmx")?;
    }
    Ok(())
}

pub(crate) fn become_root_in_userns() -> Result<()> {
    // SAFETY: plain id syscalls; results checked.
    unsafe {
        if libc::setresgid(0, 0, 0) != 0 {
            return Err(errno("setresgid to root of the user namespace"));
        }
        if libc::setresuid(0, 0, 0) != 0 {
            return Err(errno("setresuid to root of the user namespace"));
        }
    }
    Ok(())
}

/// Like runc, init creates a missing `process.cwd` (0755, inside the new
/// root, before `/` may be made read-only); `exec` does not.
fn create_cwd(cwd: &Path) -> Result<()> {
    if cwd.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(io_err("create process.cwd", cwd))
}

fn set_hostname(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| ContainerError::Sys {
            op: "sethostname",
            source: e.into(),
        })?;
    }
    if let Some(d) = spec.domainname.as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length describe the string's bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(errno("setdomainname"));
        }
    }
    Ok(())
}

/// runc gives each container its own session keyring, so containers do
/// not share the host's keys. ENOSYS (no keyrings) is not an error.
fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = CString::new(format!("_ses.{id}"))
        .map_err(|_| ContainerError::Invalid("container id has a NUL byte".into()))?;
    // SAFETY: keyctl with a valid C string argument.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(ContainerError::Sys {
                op: "join session keyring",
                source: err,
            });
        }
    }
    Ok(())
}

/// Closes every fd >= `from` except those in `keep`.
pub(crate) fn close_all_but(from: i32, keep: &[i32]) {
    let mut keep: Vec<i32> = keep.iter().copied().filter(|&k| k >= from).collect();
    keep.sort_unstable();
    let mut lo = from as u32;
    for k in keep {
        if k as u32 > lo {
            // SAFETY: close_range only closes descriptors.
            unsafe { libc::syscall(libc::SYS_close_range, lo, k as u32 - 1, 0) };
        }
        lo = k as u32 + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0) };
}

/// Blocks until `start` opens the exec fifo, then tells it we go on.
fn wait_for_start(fifo_opath: i32) -> Result<()> {
    let proc_path = format!("/proc/self/fd/{fifo_opath}");
    let c =
        CString::new(proc_path.clone()).map_err(|_| ContainerError::Invalid("fifo path".into()))?;
    let fd = loop {
        // SAFETY: open with a valid C string; result checked.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            break fd;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(io_err("open exec fifo", Path::new(&proc_path))(err));
        }
    };
    // SAFETY: writing one byte from a static buffer to our fresh fd.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    if n != 1 {
        return Err(errno("write exec fifo"));
    }
    // SAFETY: closing the O_PATH descriptor we were handed.
    unsafe { libc::close(fifo_opath) };
    // The write end stays open until exec closes it (O_CLOEXEC): `start`
    // waits for that end of file, so poststart hooks run after the exec.
    Ok(())
}

/// The user's program starts with default signal dispositions and an empty mask.
fn reset_signals() {
    // SAFETY: sigset operations on a local; sigprocmask/signal with valid args.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Lets `n` fds from `from` on (runc's --preserve-fds) survive exec.
pub(crate) fn clear_cloexec(from: i32, n: u32) {
    for fd in from..from + n as i32 {
        // SAFETY: fcntl on a descriptor number; failure (not open) is harmless.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
}
