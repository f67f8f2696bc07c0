//! Container state on disk: `<root>/<id>/state.json`, the exec fifo, and
//! the lock that serialises commands on one container.
//!
//! The status is not trusted from the file: a container whose init died is
//! `stopped` whatever the file says. The init is identified by pid *and*
//! start time (field 22 of `/proc/<pid>/stat`), so a recycled pid never
//! passes for the container.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{Spec, OCI_VERSION};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { op, path, source }
}

/// The OCI lifecycle states, plus `paused` as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `state.json` holds: the OCI state plus what later commands need
/// (the container's config, its cgroup, the init's start time).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    pub owner: String,
    /// Field 22 of /proc/<pid>/stat of the init, in clock ticks since boot.
    pub init_start_time: u64,
    pub cgroup_path: PathBuf,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Rootless without a delegated cgroup: the container runs in the
    /// caller's cgroup and nothing cgroup-based applies (runc does the same).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_cgroup: bool,
    pub config: Spec,
}

/// The OCI state document as `state` prints it and hooks read it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: &'a std::collections::BTreeMap<String, String>,
}

impl ContainerState {
    /// The container's cgroup, or None when it runs without one.
    pub fn cgroup(&self) -> Result<Option<cgroups::Cgroup>, cgroups::CgroupError> {
        if self.without_cgroup {
            return Ok(None);
        }
        cgroups::Cgroup::open(&self.cgroup_path).map(Some)
    }

    pub fn oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            status,
            pid: (status != Status::Stopped).then_some(self.pid),
            bundle: &self.bundle,
            annotations: &self.config.annotations,
        }
    }

    /// The status as the kernel sees it now.
    pub fn current_status(&self, dir: &StateDir) -> Status {
        if self.status == Status::Creating {
            return if process_matches(self.pid, self.init_start_time) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !process_matches(self.pid, self.init_start_time) {
            return Status::Stopped;
        }
        if dir.path.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if self.status == Status::Paused {
            return Status::Paused;
        }
        Status::Running
    }
}

/// `<root>/<id>`, locked for the lifetime of this value.
#[derive(Debug)]
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
    lock: File,
}

/// runc's rule for ids: letters, digits and `_+-.`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let bad = |reason| {
        Err(StateError::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." {
        return bad("reserved name");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return bad("only letters, digits and _+-. are allowed");
    }
    Ok(())
}

fn flock_exclusive(file: &File, path: &Path) -> Result<(), StateError> {
    loop {
        // SAFETY: flock on a valid fd we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(io_err("lock", path)(err));
        }
    }
}

impl StateDir {
    /// Makes `<root>/<id>` for a new container; fails if it exists.
    pub fn create(root: &Path, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(io_err("create state root", root))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()))
            }
            Err(e) => return Err(io_err("create state dir", &path)(e)),
        }
        let lock = File::open(&path).map_err(io_err("open", &path))?;
        flock_exclusive(&lock, &path)?;
        Ok(StateDir {
            id: id.to_string(),
            path,
            lock,
        })
    }

    /// Opens and locks the state dir of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()))
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        flock_exclusive(&lock, &path)?;
        // A concurrent delete may have removed it while we waited.
        if !path.join(STATE_FILE).exists() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(StateDir {
            id: id.to_string(),
            path,
            lock,
        })
    }

    pub fn load(&self) -> Result<ContainerState, StateError> {
        let file = self.path.join(STATE_FILE);
        let data = match fs::read(&file) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()))
            }
            Err(e) => return Err(io_err("read", &file)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| StateError::Parse { path: file, source })
    }

    /// Writes state.json atomically (temporary file + rename).
    pub fn save(&self, state: &ContainerState) -> Result<(), StateError> {
        let file = self.path.join(STATE_FILE);
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(state).map_err(|source| StateError::Parse {
            path: file.clone(),
            source,
        })?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&data).map_err(io_err("write", &tmp))?;
        drop(f);
        fs::rename(&tmp, &file).map_err(io_err("rename", &file))
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Removes the whole state dir (the lock stays held until drop).
    pub fn remove(&self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &self.path)(e)),
        }
    }

    pub fn lock_fd(&self) -> &File {
        &self.lock
    }
}

/// Ids of all containers under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", root)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Field 22 (starttime) of `/proc/<pid>/stat`, and whether it is a zombie.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let data = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parens: fields start after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    // After the state come fields 4..; starttime is field 22, i.e. 18 more.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

/// True when `pid` is alive (not a zombie) and started at `start_time`.
pub fn process_matches(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_start_time(pid) {
        Some((start, zombie)) => start == start_time && !zombie,
        None => false,
    }
}

/// The current time as RFC 3339 UTC with nanoseconds.
pub fn now_rfc3339() -> String {
    sys::time::rfc3339(std::time::SystemTime::now(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn create_twice_fails_and_open_missing_fails() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::create(root.path(), "c1").expect("first create");
        drop(dir);
        assert!(matches!(
            StateDir::create(root.path(), "c1"),
            Err(StateError::Exists(_))
        ));
        assert!(matches!(
            StateDir::open(root.path(), "nope"),
            Err(StateError::NotFound(_))
        ));
    }

    #[test]
    fn own_process_start_time_is_readable() {
        let pid = std::process::id() as i32;
        let (start, zombie) = proc_start_time(pid).expect("stat of self");
        assert!(!zombie);
        assert!(process_matches(pid, start));
        assert!(!process_matches(pid, start + 1));
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
