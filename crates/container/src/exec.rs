//! `exec`: a new process in a running container.
//!
//! The runtime joins the container's pid (and time) namespace for its
//! children, forks, and the child joins the rest: the user namespace first
//! (which gives it full capabilities there), then the others, mount last.
//! Only namespaces that differ from the runtime's own are joined, so a
//! container that shares the host's network, say, needs no special case.
//! The child is placed in the container's cgroup before it goes on.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::console;
use crate::create::{close_fd, write_pid_file};
use crate::error::{ContainerError, Result};
use crate::init::{self, report_and_exit};
use crate::lifecycle;
use crate::namespaces::{self, ns_inode, Join};
use crate::spec::{NamespaceType, Process};
use crate::state::Status;
use crate::sync::{self, Message};
use crate::Runtime;

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// The container's process settings, as the base of an exec'd process.
pub fn template(rt: &Runtime, id: &str) -> Result<Process> {
    let (_dir, state, _status) = lifecycle::load(rt, id)?;
    Ok(state.config.process.clone().unwrap_or_default())
}

/// Runs the process; returns its exit code (0 when detached).
pub fn exec(rt: &Runtime, opts: &ExecOptions) -> Result<i32> {
    let (dir, state, status) = lifecycle::load(rt, &opts.id)?;
    match status {
        Status::Created | Status::Running => {}
        other => {
            return Err(ContainerError::Invalid(format!(
                "cannot exec in container {}: it is {other}",
                opts.id
            )))
        }
    }
    let p = &opts.process;
    crate::support::check_process(p)?;
    if p.args.is_empty() {
        return Err(ContainerError::Invalid("exec: no command given".into()));
    }
    if p.terminal && opts.detach && opts.console_socket.is_none() {
        return Err(ContainerError::Invalid(
            "exec: a terminal for a detached process needs --console-socket".into(),
        ));
    }
    // Exec'd processes must not hold the container's lock while they run.
    drop(dir);
    let joins = open_namespaces(state.pid)?;
    let filter = init::compile_seccomp(&state.config, rt)?;
    let cgroup = state.cgroup()?;
    let (runtime_sock, child_sock) = sync::pair().map_err(crate::error::sys_err("socketpair"))?;
    // With a user namespace, everything is joined from inside it, by an
    // intermediate (an unprivileged caller has no rights on the container's
    // pid namespace until it is in the container's user namespace).
    let two_stages = joins.iter().any(|j| j.kind == NamespaceType::User);
    if !two_stages {
        for j in joins
            .iter()
            .filter(|j| matches!(j.kind, NamespaceType::Pid | NamespaceType::Time))
        {
            namespaces::setns(j)?;
        }
    }
    let signals = if opts.detach {
        None
    } else {
        Some(crate::signals::ForwardGuard::block()?)
    };
    let pid = if two_stages {
        exec_two_stages(&joins, runtime_sock.as_fd(), child_sock.as_fd())?
    } else {
        namespaces::clone_process(0).map_err(crate::error::sys_err("fork exec process"))?
    };
    if pid == 0 {
        close_fd(std::os::fd::AsRawFd::as_raw_fd(&runtime_sock));
        std::mem::forget(runtime_sock);
        let mut config = state.config.clone();
        config.process = Some(p.clone());
        let remaining: &[Join] = if two_stages { &[] } else { &joins };
        let err = match child(&config, remaining, child_sock, opts, filter) {
            Ok(never) => match never {},
            Err((sock, e)) => (sock, e),
        };
        report_and_exit(err.0.as_fd(), &err.1)
    }
    drop(child_sock);
    let fail = |e: ContainerError| {
        crate::create::kill_child(pid);
        e
    };
    if let Some(cgroup) = &cgroup {
        cgroup.add_task(pid).map_err(|e| fail(e.into()))?;
    }
    sync::send(runtime_sock.as_fd(), &Message::Go(String::new())).map_err(|e| {
        fail(ContainerError::Sys {
            op: "sync with exec process",
            source: e,
        })
    })?;
    let mut master = None;
    loop {
        match sync::recv(runtime_sock.as_fd()).map_err(|e| {
            fail(ContainerError::Sys {
                op: "sync with exec process",
                source: e,
            })
        })? {
            Some(Message::PtyMaster) => {
                master = Some(console::recv_fd(runtime_sock.as_fd()).map_err(|e| fail(e.into()))?)
            }
            Some(Message::Ready) => break,
            Some(Message::Error(text)) => {
                crate::create::kill_child(pid);
                return Err(ContainerError::Init(text));
            }
            // The socket closes at a successful exec (close-on-exec).
            None => break,
            Some(other) => {
                return Err(fail(ContainerError::Init(format!(
                    "unexpected message from exec process: {other:?}"
                ))))
            }
        }
    }
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, pid)?;
    }
    match signals {
        None => Ok(0),
        Some(sig) => match master {
            Some(m) => sig.wait_with_terminal(pid, m),
            None => sig.wait(pid),
        },
    }
}

/// Joins every namespace from an intermediate process, the user namespace
/// first, then forks the process to exec (so it starts inside the pid
/// namespace). The runtime is a child subreaper, so that process becomes
/// its child when the intermediate exits. Returns 0 in that process.
fn exec_two_stages(
    joins: &[Join],
    runtime_sock: std::os::fd::BorrowedFd<'_>,
    child_sock: std::os::fd::BorrowedFd<'_>,
) -> Result<i32> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(crate::error::errno("become child subreaper"));
    }
    let mid = namespaces::clone_process(0).map_err(crate::error::sys_err("fork intermediate"))?;
    if mid == 0 {
        let forked = (|| -> Result<i32> {
            for kind in JOIN_ORDER {
                for j in joins.iter().filter(|j| j.kind == kind) {
                    namespaces::setns(j)?;
                }
            }
            init::become_root_in_userns()?;
            namespaces::clone_process(0).map_err(crate::error::sys_err("fork exec process"))
        })();
        match forked {
            Ok(0) => return Ok(0),
            Ok(pid) => {
                let _ = sync::send(child_sock, &Message::Pid(pid));
                // SAFETY: _exit ends the intermediate without running destructors.
                unsafe { libc::_exit(0) }
            }
            Err(e) => report_and_exit(child_sock, &e),
        }
    }
    let msg = sync::recv(runtime_sock);
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(mid, std::ptr::null_mut(), 0) };
    match msg.map_err(crate::error::sys_err("sync with intermediate"))? {
        Some(Message::Pid(pid)) => Ok(pid),
        Some(Message::Error(text)) => Err(ContainerError::Init(text)),
        _ => Err(ContainerError::Init(
            "exec intermediate ended without reporting a pid".into(),
        )),
    }
}

/// The order an exec'd process joins namespaces in: the user namespace
/// first (it grants the rights over the others), the mount namespace last
/// (it changes what every later path means).
const JOIN_ORDER: [NamespaceType; 8] = [
    NamespaceType::User,
    NamespaceType::Ipc,
    NamespaceType::Uts,
    NamespaceType::Network,
    NamespaceType::Pid,
    NamespaceType::Cgroup,
    NamespaceType::Time,
    NamespaceType::Mount,
];

/// The namespaces of the container's init that differ from ours.
fn open_namespaces(pid: i32) -> Result<Vec<Join>> {
    let pid_s = pid.to_string();
    let mut joins = Vec::new();
    for kind in JOIN_ORDER {
        let theirs = ns_inode(&pid_s, kind);
        if theirs.is_none() || theirs == ns_inode("self", kind) {
            continue;
        }
        let path = PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name()));
        let fd = File::open(&path)
            .map(OwnedFd::from)
            .map_err(crate::error::io_err("open namespace", &path))?;
        joins.push(Join { kind, path, fd });
    }
    Ok(joins)
}

type ChildError = (OwnedFd, ContainerError);

fn child(
    config: &crate::spec::Spec,
    joins: &[Join],
    sock: OwnedFd,
    opts: &ExecOptions,
    filter: Option<crate::seccomp::SeccompProgram>,
) -> std::result::Result<std::convert::Infallible, ChildError> {
    match child_inner(config, joins, &sock, opts, filter) {
        Ok(never) => match never {},
        Err(e) => Err((sock, e)),
    }
}

fn child_inner(
    config: &crate::spec::Spec,
    joins: &[Join],
    sock: &OwnedFd,
    opts: &ExecOptions,
    filter: Option<crate::seccomp::SeccompProgram>,
) -> Result<std::convert::Infallible> {
    match sync::recv(sock.as_fd()).map_err(crate::error::sys_err("sync with runtime"))? {
        Some(Message::Go(_)) => {}
        _ => return Err(ContainerError::Init("runtime went away".into())),
    }
    let mut in_userns = false;
    for j in joins
        .iter()
        .filter(|j| !matches!(j.kind, NamespaceType::Pid | NamespaceType::Time))
    {
        namespaces::setns(j)?;
        if j.kind == NamespaceType::User {
            in_userns = true;
        }
    }
    if in_userns {
        // SAFETY: plain id syscalls; results checked by the later identity change.
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }
    let p = config
        .process
        .as_ref()
        .ok_or_else(|| ContainerError::Invalid("exec: no process".into()))?;
    let console_conn = match &opts.console_socket {
        Some(path) => Some(console::connect_console_socket(path)?),
        None => None,
    };
    if p.terminal {
        // SAFETY: setsid takes no arguments.
        if unsafe { libc::setsid() } < 0 {
            return Err(crate::error::errno("setsid"));
        }
        let pty = console::new_pty(p.console_size)?;
        console::attach_slave(&pty.slave_path, false)?;
        init::hand_over_master(
            sock.as_fd(),
            console_conn.as_ref(),
            &pty.master,
            !opts.detach,
        )?;
    }
    drop(console_conn);
    let program = init::prepare_process(config, p, false, filter)?;
    let keep = [std::os::fd::AsRawFd::as_raw_fd(sock)];
    init::close_all_but(3 + opts.preserve_fds as i32, &keep);
    init::clear_cloexec(3, opts.preserve_fds);
    program.exec()
}

/// runc's exec flags that shape the process when no --process is given.
#[derive(Debug, Clone, Default)]
pub struct ExecFlags {
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
}

/// The container's process with runc's exec flags applied on top.
pub fn process_from_flags(mut p: Process, f: &ExecFlags) -> Result<Process> {
    p.args = f.args.clone();
    p.command_line = None;
    p.terminal = f.tty;
    p.console_size = None;
    if let Some(cwd) = &f.cwd {
        p.cwd = cwd.clone();
    }
    for kv in &f.env {
        let key = kv.split('=').next().unwrap_or(kv);
        p.env.retain(|e| e.split('=').next() != Some(key));
        p.env.push(kv.clone());
    }
    if let Some(user) = &f.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let bad =
            || ContainerError::Invalid(format!("--user {user:?}: expected uid[:gid] as numbers"));
        p.user.uid = uid.parse().map_err(|_| bad())?;
        if let Some(g) = gid {
            p.user.gid = g.parse().map_err(|_| bad())?;
        }
    }
    if !f.additional_gids.is_empty() {
        p.user.additional_gids = f.additional_gids.clone();
    }
    if !f.caps.is_empty() {
        let caps = p.capabilities.get_or_insert_with(Default::default);
        for set in [
            &mut caps.bounding,
            &mut caps.effective,
            &mut caps.permitted,
            &mut caps.ambient,
            &mut caps.inheritable,
        ] {
            let list = set.get_or_insert_with(Vec::new);
            for c in &f.caps {
                let name = c.to_ascii_uppercase();
                if !list.contains(&name) {
                    list.push(name);
                }
            }
        }
    }
    if f.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok(p)
}

/// `exec --process FILE`: the spec's `process` object, validated.
pub fn process_from_file(path: &std::path::Path) -> Result<Process> {
    let data = std::fs::read(path).map_err(crate::error::io_err("read", path))?;
    let de = &mut serde_json::Deserializer::from_slice(&data);
    let p: Process = serde_path_to_error::deserialize(de).map_err(|e| {
        ContainerError::Invalid(format!(
            "parse {}: field {}: {}",
            path.display(),
            e.path(),
            e.inner()
        ))
    })?;
    if p.args.is_empty() {
        return Err(ContainerError::Invalid(format!(
            "{}: args is empty",
            path.display()
        )));
    }
    if p.cwd.as_os_str().is_empty() || !p.cwd.is_absolute() {
        return Err(ContainerError::Invalid(format!(
            "{}: cwd {:?} is not an absolute path",
            path.display(),
            p.cwd
        )));
    }
    Ok(p)
}
