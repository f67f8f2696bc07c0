//! `create` and `run`: the runtime's side of making a container.
//!
//! The runtime validates the bundle, makes the state dir and the cgroup,
//! then clones the init into its new namespaces. The two talk over a
//! socketpair (see `sync`): the runtime writes the id maps and joins the
//! init to its cgroup, runs the prestart/createRuntime hooks when the init
//! asks, and records the `created` state when the init says it is ready.
//! The init then blocks on the exec fifo until `start` opens it.
//!
//! Anything that fails before `created` is undone by [`Undo`]: the init is
//! killed, the cgroup and the state dir removed.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cgroups::Cgroup;

use crate::error::{io_err, ContainerError, Result};
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::namespaces::{self, NamespacePlan};
use crate::spec::{NamespaceType, Spec};
use crate::state::{self, ContainerState, StateDir, Status};
use crate::sync::{self, Message};
use crate::Runtime;

/// Options of `create` and `run`, as runc names them.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// A container whose init is ready and waiting on the exec fifo.
pub(crate) struct Spawned {
    pub dir: StateDir,
    pub state: ContainerState,
    /// The pty master, when the runtime itself relays the terminal.
    pub pty_master: Option<OwnedFd>,
}

/// Undoes a half-made container unless disarmed.
struct Undo<'a> {
    dir: Option<&'a StateDir>,
    cgroup: Option<&'a Cgroup>,
    child: Option<i32>,
}

impl Undo<'_> {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.child {
            // SAFETY: plain syscalls on a pid we created and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(cg) = self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.delete();
        }
        if let Some(dir) = self.dir {
            let _ = dir.remove();
        }
    }
}

/// `berth-runtime create`: returns once the container is `created`.
pub fn create(rt: &Runtime, opts: &CreateOptions) -> Result<()> {
    spawn(rt, opts, true).map(drop)
}

/// Loads and checks the bundle: the spec and the absolute rootfs path.
fn load_bundle(bundle: &Path) -> Result<(PathBuf, Spec, PathBuf)> {
    let bundle = fs::canonicalize(bundle).map_err(io_err("bundle", bundle))?;
    let spec = Spec::load(&bundle.join("config.json"))?;
    let root = spec
        .root
        .as_ref()
        .map(|r| r.path.clone())
        .unwrap_or_default();
    let rootfs_rel = bundle.join(&root);
    let rootfs = fs::canonicalize(&rootfs_rel).map_err(io_err("root.path", &rootfs_rel))?;
    if !rootfs.is_dir() {
        return Err(ContainerError::Invalid(format!(
            "root.path {}: not a directory",
            rootfs.display()
        )));
    }
    if spec.process.is_none() {
        return Err(ContainerError::Invalid(
            "process: missing in config.json, nothing to run".into(),
        ));
    }
    crate::support::check_spec(&spec)?;
    if spec.namespace(NamespaceType::Mount).is_none() {
        return Err(ContainerError::Invalid(
            "linux.namespaces: a mount namespace is required".into(),
        ));
    }
    Ok((bundle, spec, rootfs))
}

pub(crate) fn spawn(rt: &Runtime, opts: &CreateOptions, detached: bool) -> Result<Spawned> {
    // The runtime changes into the bundle below: paths the caller gave
    // relative to its own directory are made absolute first (as runc does).
    let opts = &absolute_paths(opts)?;
    let (bundle, spec, rootfs) = load_bundle(&opts.bundle)?;
    let process = spec
        .process
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("process: missing in config.json".into()))?;
    if process.terminal && detached && opts.console_socket.is_none() {
        return Err(ContainerError::Invalid(
            "process.terminal is true but no --console-socket was given for a detached container"
                .into(),
        ));
    }
    if !process.terminal && opts.console_socket.is_some() {
        return Err(ContainerError::Invalid(
            "--console-socket given but process.terminal is false".into(),
        ));
    }
    let plan = NamespacePlan::from_spec(&spec)?;
    let seccomp = crate::init::compile_seccomp(&spec, rt)?;

    let cgroup_path = cgroups::resolve_cgroups_path(
        spec.linux().cgroups_path.as_deref(),
        &opts.id,
        rt.systemd_cgroup,
    )?;
    // Opening only probes the host; nothing is created yet.
    let cgroup = Cgroup::open(&cgroup_path)?;
    let dir = StateDir::create(&rt.root, &opts.id)?;
    let mut undo = Undo {
        dir: Some(&dir),
        cgroup: None,
        child: None,
    };
    let without_cgroup = match cgroup.create() {
        Ok(()) => {
            undo.cgroup = Some(&cgroup);
            cgroup.apply(&effective_resources(&spec))?;
            false
        }
        Err(e) if rootless_may_skip_cgroup(&e, &spec) => {
            crate::log::debug(&format!("rootless without a delegated cgroup: {e}"));
            true
        }
        Err(e) => return Err(e.into()),
    };

    let fifo_path = dir.fifo_path();
    make_fifo(&fifo_path, host_root_ids(&spec))?;
    let fifo = open_path_only(&fifo_path)?;
    let (runtime_sock, init_sock) = sync::pair().map_err(crate::error::sys_err("socketpair"))?;
    std::env::set_current_dir(&bundle).map_err(io_err("chdir to bundle", &bundle))?;
    plan.enter_for_children(spec.linux().time_offsets.as_ref())?;

    let foreground_terminal = process.terminal && opts.console_socket.is_none();
    let two_stages = plan.needs_two_stages();
    let pid = if two_stages {
        spawn_two_stages(&spec, &plan, runtime_sock.as_fd(), init_sock.as_fd())?
    } else {
        namespaces::clone_process(plan.clone_flags)
            .map_err(crate::error::sys_err("clone container init"))?
    };
    if pid == 0 {
        // The container's init. Close what belongs to the runtime only:
        // the lock (it would keep `start` waiting) and the runtime's end.
        close_fd(dir.lock_fd().as_raw_fd());
        close_fd(runtime_sock.as_raw_fd());
        std::mem::forget(runtime_sock);
        std::mem::forget(undo);
        init::run(InitArgs {
            spec: &spec,
            plan: &plan,
            rootfs: &rootfs,
            sync: init_sock,
            fifo: Some(fifo),
            console_socket: opts.console_socket.as_deref(),
            foreground_terminal,
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds: opts.preserve_fds,
            id: &opts.id,
            namespaces_joined: two_stages,
            seccomp,
        })
    }
    drop(init_sock);
    drop(fifo);
    undo.child = Some(pid);

    if plan.new_user && !two_stages {
        let linux = spec.linux();
        namespaces::write_id_maps(pid, &linux.uid_mappings, &linux.gid_mappings)?;
    }
    if !without_cgroup {
        cgroup.add_task(pid)?;
    }

    let owner = owner_name();
    let mut state = ContainerState {
        oci_version: spec.oci_version.clone(),
        id: opts.id.clone(),
        status: Status::Creating,
        pid,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: state::now_rfc3339(),
        owner,
        init_start_time: state::proc_start_time(pid).map(|(t, _)| t).unwrap_or(0),
        cgroup_path,
        systemd_cgroup: rt.systemd_cgroup,
        without_cgroup,
        config: spec,
    };
    let creating_json = oci_json(&state, Status::Creating);
    sync::send(runtime_sock.as_fd(), &Message::Go(creating_json.clone()))
        .map_err(crate::error::sys_err("sync with container init"))?;

    let mut pty_master = None;
    loop {
        let msg = sync::recv(runtime_sock.as_fd())
            .map_err(crate::error::sys_err("sync with container init"))?;
        match msg {
            Some(Message::RunHooks) => {
                if let Some(h) = &state.config.hooks {
                    hooks::run_hooks("prestart", &h.prestart, creating_json.as_bytes())?;
                    hooks::run_hooks("createRuntime", &h.create_runtime, creating_json.as_bytes())?;
                }
                sync::send(runtime_sock.as_fd(), &Message::HooksDone)
                    .map_err(crate::error::sys_err("sync with container init"))?;
            }
            Some(Message::PtyMaster) => {
                pty_master = Some(crate::console::recv_fd(runtime_sock.as_fd())?);
            }
            Some(Message::Ready) => break,
            Some(Message::Error(text)) => return Err(ContainerError::Init(text)),
            Some(other) => {
                return Err(ContainerError::Init(format!(
                    "unexpected message from container init: {other:?}"
                )))
            }
            None => return Err(ContainerError::Init(init_died(pid))),
        }
    }

    state.status = Status::Created;
    dir.save(&state)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    undo.disarm();
    drop(undo);
    Ok(Spawned {
        dir,
        state,
        pty_master,
    })
}

/// The state JSON handed to hooks and printed by `state`.
pub(crate) fn oci_json(state: &ContainerState, status: Status) -> String {
    serde_json::to_string(&state.oci(status)).unwrap_or_default()
}

fn init_died(pid: i32) -> String {
    let mut status = 0;
    // SAFETY: waitpid on our own child, writing into a local.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    if rc == pid && libc::WIFSIGNALED(status) {
        format!(
            "container init was killed by signal {} during setup",
            libc::WTERMSIG(status)
        )
    } else if rc == pid && libc::WIFEXITED(status) {
        format!(
            "container init exited with status {} during setup",
            libc::WEXITSTATUS(status)
        )
    } else {
        "container init ended during setup".into()
    }
}

/// The exec fifo: writable by the container's root (the init may run as
/// another host uid in a user namespace), whatever the umask.
fn make_fifo(path: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ContainerError::Invalid(format!("{}: NUL in path", path.display())))?;
    // SAFETY: mkfifo/chmod/chown with a valid C string.
    unsafe {
        if libc::mkfifo(c.as_ptr(), 0o622) != 0 || libc::chmod(c.as_ptr(), 0o622) != 0 {
            return Err(io_err("mkfifo", path)(std::io::Error::last_os_error()));
        }
        if let Some((uid, gid)) = owner {
            if libc::chown(c.as_ptr(), uid, gid) != 0 {
                return Err(io_err("chown", path)(std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// The host uid and gid of the container's root, when it has a user namespace.
fn host_root_ids(spec: &Spec) -> Option<(u32, u32)> {
    spec.namespace(NamespaceType::User)?;
    let find = |maps: &[crate::spec::IdMapping]| {
        maps.iter()
            .find(|m| m.container_id == 0 && m.size > 0)
            .map(|m| m.host_id)
    };
    let linux = spec.linux();
    Some((find(&linux.uid_mappings)?, find(&linux.gid_mappings)?))
}

fn open_path_only(path: &Path) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ContainerError::Invalid(format!("{}: NUL in path", path.display())))?;
    // SAFETY: open with a valid C string; the result is checked.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io_err("open", path)(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn close_fd(fd: i32) {
    // SAFETY: closing a descriptor number; callers forget any owner of it.
    unsafe {
        libc::close(fd);
    }
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pid".into())
    ));
    fs::write(&tmp, pid.to_string()).map_err(io_err("write pid file", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("write pid file", path))
}

/// The name of the effective user, from /etc/passwd (as Go's os/user does
/// without cgo); the uid when there is no entry. Reading the file directly
/// keeps glibc's NSS machinery out of every container start.
fn owner_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() }.to_string();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or(uid)
}

/// Kills and reaps a child we own, ignoring errors (used on failure paths).
pub(crate) fn kill_child(pid: i32) {
    // SAFETY: plain syscalls on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// The cgroup resources to apply: the spec's, plus runc's default device
/// rules (after the spec's own, so a default "deny all" leaves the basic
/// devices usable) and an allow rule for each `linux.devices` entry.
pub(crate) fn effective_resources(spec: &Spec) -> cgroups::LinuxResources {
    use cgroups::LinuxDeviceCgroup;
    let mut r = spec.linux().resources.clone().unwrap_or_default();
    let rule =
        |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| LinuxDeviceCgroup {
            allow: true,
            typ: Some(typ.to_string()),
            major,
            minor,
            access: Some(access.to_string()),
        };
    let devices = r.devices.get_or_insert_with(Vec::new);
    for d in &spec.linux().devices {
        if matches!(d.kind.as_str(), "c" | "b" | "u") {
            let typ = if d.kind == "u" { "c" } else { d.kind.as_str() };
            devices.push(rule(typ, Some(d.major), Some(d.minor), "rwm"));
        }
    }
    devices.extend([
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"),    // null
        rule("c", Some(1), Some(8), "rwm"),    // random
        rule("c", Some(1), Some(7), "rwm"),    // full
        rule("c", Some(5), Some(0), "rwm"),    // tty
        rule("c", Some(1), Some(5), "rwm"),    // zero
        rule("c", Some(1), Some(9), "rwm"),    // urandom
        rule("c", Some(136), None, "rwm"),     // pts
        rule("c", Some(5), Some(2), "rwm"),    // ptmx
        rule("c", Some(10), Some(200), "rwm"), // tun
    ]);
    r
}

/// The two-stage spawn (runc's nsexec does the same): an intermediate
/// process joins the namespaces given by path, makes the new user namespace
/// (the runtime writes its id maps), unshares the other new namespaces and
/// forks the init, which so starts as pid 1 of a new pid namespace owned by
/// the right user namespace. The intermediate reports the init's pid and
/// exits; the runtime is a child subreaper, so the init becomes its child.
///
/// Returns 0 in the init and the init's pid in the runtime.
fn spawn_two_stages(
    spec: &Spec,
    plan: &NamespacePlan,
    runtime_sock: BorrowedFd<'_>,
    init_sock: BorrowedFd<'_>,
) -> Result<i32> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(crate::error::errno("become child subreaper"));
    }
    let mid = namespaces::clone_process(0).map_err(crate::error::sys_err("fork intermediate"))?;
    if mid == 0 {
        match intermediate(plan, init_sock) {
            Ok(0) => return Ok(0),
            Ok(init) => {
                let _ = sync::send(init_sock, &Message::Pid(init));
                // SAFETY: _exit ends the intermediate without running destructors.
                unsafe { libc::_exit(0) }
            }
            Err(e) => crate::init::report_and_exit(init_sock, &e),
        }
    }
    let fail = |e: ContainerError| {
        kill_child(mid);
        e
    };
    loop {
        let msg = sync::recv(runtime_sock).map_err(|e| {
            fail(ContainerError::Sys {
                op: "sync with intermediate",
                source: e,
            })
        })?;
        match msg {
            Some(Message::MapRequest) => {
                let linux = spec.linux();
                namespaces::write_id_maps(mid, &linux.uid_mappings, &linux.gid_mappings)
                    .map_err(|e| fail(e.into()))?;
                sync::send(runtime_sock, &Message::MapDone).map_err(|e| {
                    fail(ContainerError::Sys {
                        op: "sync with intermediate",
                        source: e,
                    })
                })?;
            }
            Some(Message::Pid(init)) => {
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(mid, std::ptr::null_mut(), 0) };
                return Ok(init);
            }
            Some(Message::Error(text)) => {
                kill_child(mid);
                return Err(ContainerError::Init(text));
            }
            _ => return Err(fail(ContainerError::Init(init_died(mid)))),
        }
    }
}

/// The intermediate's work; returns 0 in the forked init, its pid otherwise.
fn intermediate(plan: &NamespacePlan, sock: BorrowedFd<'_>) -> Result<i32> {
    plan.join_all_paths()?;
    if plan.joins.iter().any(|j| j.kind == NamespaceType::User) {
        crate::init::become_root_in_userns()?;
    }
    if plan.new_user {
        namespaces::unshare(libc::CLONE_NEWUSER, "user namespace")?;
        sync::send(sock, &Message::MapRequest).map_err(crate::error::sys_err("sync"))?;
        match sync::recv(sock).map_err(crate::error::sys_err("sync"))? {
            Some(Message::MapDone) => {}
            _ => {
                return Err(ContainerError::Init(
                    "runtime did not write the id maps".into(),
                ))
            }
        }
        crate::init::become_root_in_userns()?;
    }
    let rest = plan.clone_flags & !libc::CLONE_NEWUSER;
    if rest != 0 {
        namespaces::unshare(rest, "namespaces")?;
    }
    namespaces::clone_process(0).map_err(crate::error::sys_err("fork container init"))
}

/// A rootless container may run without a cgroup when the caller has none
/// delegated (EACCES/EPERM) and the spec asks for no limits: runc's rule.
/// Asking for limits that cannot be applied stays an error.
fn rootless_may_skip_cgroup(e: &cgroups::CgroupError, spec: &Spec) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    let denied = matches!(
        e,
        cgroups::CgroupError::Mkdir { source, .. }
            if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS))
    );
    let limits = spec.linux().resources.as_ref().is_some_and(|r| {
        let mut r = r.clone();
        r.devices = None; // runc's rootless default is "no device rules"
        r != cgroups::LinuxResources::default()
    });
    denied && !limits
}

fn absolute_paths(opts: &CreateOptions) -> Result<CreateOptions> {
    let cwd = std::env::current_dir().map_err(crate::error::sys_err("current directory"))?;
    let abs = |p: &Option<PathBuf>| p.as_ref().map(|p| cwd.join(p));
    Ok(CreateOptions {
        pid_file: abs(&opts.pid_file),
        console_socket: abs(&opts.console_socket),
        ..opts.clone()
    })
}
