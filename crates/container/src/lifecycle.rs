//! The runtime commands after `create`: start, state, kill, delete, run,
//! list, ps, pause, resume.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cgroups::Cgroup;
use serde::Serialize;

use crate::create::{self, CreateOptions};
use crate::error::{errno, io_err, ContainerError, Result};
use crate::hooks;
use crate::spec::NamespaceType;
use crate::state::{self, ContainerState, StateDir, Status};
use crate::Runtime;

/// Opens, locks and loads a container; returns its live status too.
pub fn load(rt: &Runtime, id: &str) -> Result<(StateDir, ContainerState, Status)> {
    let dir = StateDir::open(&rt.root, id)?;
    let state = dir.load()?;
    let status = state.current_status(&dir);
    Ok((dir, state, status))
}

/// `state ID`: the OCI state JSON.
pub fn state_json(rt: &Runtime, id: &str) -> Result<String> {
    let (_dir, state, status) = load(rt, id)?;
    serde_json::to_string_pretty(&state.oci(status))
        .map_err(|e| ContainerError::Invalid(format!("encode state: {e}")))
}

/// `start ID`: lets a created container's init exec the user program.
pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    let (dir, state, status) = load(rt, id)?;
    match status {
        Status::Created => {}
        Status::Stopped => {
            return Err(ContainerError::Invalid(format!(
                "cannot start container {id}: it has stopped"
            )))
        }
        other => {
            return Err(ContainerError::Invalid(format!(
                "cannot start container {id}: it is {other}, not created"
            )))
        }
    }
    release_init(&dir, &state)?;
    // No rewrite of state.json: with the fifo gone the status reads as
    // running (see `ContainerState::current_status`), and this disk is slow.
    run_poststart(&state);
    drop(dir);
    Ok(())
}

fn run_poststart(state: &ContainerState) {
    if let Some(h) = &state.config.hooks {
        let json = create::oci_json(state, Status::Running);
        if let Err(e) = hooks::run_hooks("poststart", &h.poststart, json.as_bytes()) {
            // The spec: a failed poststart hook is a warning, the container runs on.
            crate::log::warn(&e.to_string());
        }
    }
}

/// Opens the exec fifo for reading, which unblocks the init, and waits for
/// its byte, then for the end of file that the init's exec (or death)
/// causes: when this returns the user's program runs. Gives up if the init
/// dies before writing.
fn release_init(dir: &StateDir, state: &ContainerState) -> Result<()> {
    let path = dir.fifo_path();
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| ContainerError::Invalid("exec fifo path has a NUL byte".into()))?;
    // SAFETY: open with a valid C string; result checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io_err("open exec fifo", &path)(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is fresh and ours.
    let fifo = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut started = false;
    loop {
        let mut pfd = libc::pollfd {
            fd: fifo.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
        if rc > 0 {
            let mut b = [0u8; 1];
            // SAFETY: reading into a local buffer.
            let n = unsafe { libc::read(fifo.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            if n == 1 {
                started = true;
                continue;
            }
            if started && (n == 0 || pfd.revents & libc::POLLHUP != 0) {
                break;
            }
            if n == 0 || pfd.revents & libc::POLLHUP != 0 {
                return Err(ContainerError::Init(format!(
                    "container {} init exited before start",
                    state.id
                )));
            }
        }
        if !started && !state::process_matches(state.pid, state.init_start_time) {
            return Err(ContainerError::Init(format!(
                "container {} init exited before start",
                state.id
            )));
        }
    }
    fs::remove_file(&path).map_err(io_err("remove exec fifo", &path))
}

/// `kill ID SIGNAL` (and `--all`).
pub fn kill(rt: &Runtime, id: &str, signal: i32, all: bool) -> Result<()> {
    let (_dir, state, status) = load(rt, id)?;
    if status == Status::Stopped {
        return Err(ContainerError::Invalid(format!(
            "cannot kill container {id}: it is not running"
        )));
    }
    if all || !has_own_pid_ns(&state) && signal == libc::SIGKILL {
        if let Some(cg) = state.cgroup()? {
            cg.kill_all(signal)?;
            if !all {
                return Ok(());
            }
        }
    }
    // SAFETY: kill with a checked, live pid.
    if unsafe { libc::kill(state.pid, signal) } != 0 {
        return Err(errno("kill container init"));
    }
    Ok(())
}

fn has_own_pid_ns(state: &ContainerState) -> bool {
    state
        .config
        .namespace(NamespaceType::Pid)
        .is_some_and(|n| n.path.is_none())
}

/// `delete [--force] ID`.
pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    let (dir, state, status) = match load(rt, id) {
        Ok(v) => v,
        // runc: deleting a missing container with --force is not an error.
        Err(ContainerError::State(state::StateError::NotFound(_))) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    match status {
        Status::Stopped | Status::Created => {}
        other if force => {
            let _ = other;
        }
        other => {
            return Err(ContainerError::Invalid(format!(
                "cannot delete container {id}: it is {other} (stop it first or use --force)"
            )))
        }
    }
    destroy(&dir, &state, status)
}

/// Kills what is left, removes the cgroup and the state, runs poststop.
pub(crate) fn destroy(dir: &StateDir, state: &ContainerState, status: Status) -> Result<()> {
    let cg = state.cgroup()?;
    if status != Status::Stopped {
        if status == Status::Paused {
            if let Some(cg) = &cg {
                let _ = cg.thaw();
            }
        }
        // SAFETY: signal a pid we verified by start time.
        unsafe { libc::kill(state.pid, libc::SIGKILL) };
        wait_gone(state, Duration::from_secs(10))?;
    }
    // Processes outside the init's pid namespace may remain in the cgroup.
    if let Some(cg) = cg.filter(|cg| cg.exists()) {
        if !cg.procs().unwrap_or_default().is_empty() {
            let _ = cg.kill_all(libc::SIGKILL);
        }
        cg.delete()?;
    }
    dir.remove()?;
    if let Some(h) = &state.config.hooks {
        let json = create::oci_json(state, Status::Stopped);
        if let Err(e) = hooks::run_hooks("poststop", &h.poststop, json.as_bytes()) {
            crate::log::warn(&e.to_string());
        }
    }
    Ok(())
}

fn wait_gone(state: &ContainerState, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while state::process_matches(state.pid, state.init_start_time) {
        if Instant::now() > deadline {
            return Err(ContainerError::Invalid(format!(
                "container {} init (pid {}) did not die within {}s of SIGKILL",
                state.id,
                state.pid,
                limit.as_secs()
            )));
        }
        // Our own child (foreground run) must be reaped to stop matching.
        // SAFETY: non-blocking waitpid on a pid; harmless if not our child.
        unsafe { libc::waitpid(state.pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// The container's cgroup for a command that cannot work without one.
pub(crate) fn needs_cgroup(state: &ContainerState, what: &str) -> Result<Cgroup> {
    state.cgroup()?.ok_or_else(|| {
        ContainerError::Invalid(format!(
            "cannot {what} container {}: it runs without a cgroup (rootless, none delegated)",
            state.id
        ))
    })
}

/// `pause ID`: freezes every process of the container.
pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    let (dir, mut state, status) = load(rt, id)?;
    if status != Status::Running && status != Status::Created {
        return Err(ContainerError::Invalid(format!(
            "cannot pause container {id}: it is {status}"
        )));
    }
    needs_cgroup(&state, "pause")?.freeze()?;
    state.status = Status::Paused;
    dir.save(&state).map_err(ContainerError::from)
}

/// `resume ID`: thaws a paused container.
pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    let (dir, mut state, status) = load(rt, id)?;
    if status != Status::Paused {
        return Err(ContainerError::Invalid(format!(
            "cannot resume container {id}: it is {status}, not paused"
        )));
    }
    needs_cgroup(&state, "resume")?.thaw()?;
    state.status = Status::Running;
    dir.save(&state).map_err(ContainerError::from)
}

/// One line of `list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListEntry {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// `list`: every container under the root. Unreadable entries are skipped.
pub fn list(rt: &Runtime) -> Result<Vec<ListEntry>> {
    let mut out = Vec::new();
    for id in state::list_ids(&rt.root)? {
        let Ok((_dir, st, status)) = load(rt, &id) else {
            continue;
        };
        out.push(ListEntry {
            oci_version: st.oci_version.clone(),
            id: st.id.clone(),
            pid: if status == Status::Stopped { 0 } else { st.pid },
            status,
            bundle: st.bundle.clone(),
            rootfs: st.rootfs.clone(),
            created: st.created.clone(),
            owner: st.owner.clone(),
            annotations: st.config.annotations.clone(),
        });
    }
    Ok(out)
}

/// `ps ID`: the host pids of the container's processes.
pub fn pids(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    let (_dir, state, status) = load(rt, id)?;
    if status == Status::Stopped {
        return Ok(Vec::new());
    }
    let mut pids = match state.cgroup()? {
        Some(cg) => cg.procs()?,
        // Without a cgroup only the init is known for sure.
        None => vec![state.pid],
    };
    pids.sort_unstable();
    Ok(pids)
}

/// `run`: create + start; in the foreground, wait and return the exit code.
pub fn run(rt: &Runtime, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let spawned = create::spawn(rt, opts, detach)?;
    let st = spawned.state;
    let pid = st.pid;
    if detach {
        release_init(&spawned.dir, &st)?;
        run_poststart(&st);
        return Ok(0);
    }
    let signals = crate::signals::ForwardGuard::block()?;
    if let Err(e) = release_init(&spawned.dir, &st) {
        create::kill_child(pid);
        let _ = destroy(&spawned.dir, &st, Status::Stopped);
        return Err(e);
    }
    // Release the lock while the container runs, so kill/state/exec work.
    drop(spawned.dir);
    run_poststart(&st);
    let code = match spawned.pty_master {
        Some(master) => signals.wait_with_terminal(pid, master)?,
        None => signals.wait(pid)?,
    };
    drop(signals);
    if !keep {
        // A concurrent `delete` may have removed it already.
        if let Ok(dir) = StateDir::open(&rt.root, &st.id) {
            destroy(&dir, &st, Status::Stopped)?;
        }
    }
    Ok(code)
}

/// `spec`: writes the default config.json; refuses to overwrite one.
pub fn write_default_spec(path: &std::path::Path, rootless: bool) -> Result<()> {
    let spec = crate::spec_default::default_spec(rootless);
    let data = serde_json::to_vec_pretty(&spec)
        .map_err(|e| ContainerError::Invalid(format!("encode spec: {e}")))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                ContainerError::Invalid(format!("{} exists: remove it first", path.display()))
            }
            _ => io_err("create", path)(e),
        })?;
    std::io::Write::write_all(&mut f, &data).map_err(io_err("write", path))
}

/// Keeps the header and the lines of `ps` output whose PID column is one
/// of `pids` (runc's `ps` does the same).
pub fn filter_ps_output(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.lines();
    let header = lines
        .next()
        .ok_or_else(|| ContainerError::Invalid("ps printed nothing".into()))?;
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| ContainerError::Invalid("ps output has no PID column".into()))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_by_pid_column() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 5\n";
        let got = filter_ps_output(out, &[42]).expect("filter");
        assert_eq!(
            got,
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 5\n"
        );
    }
}
