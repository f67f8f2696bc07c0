//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the cgroup layer. Messages are lower case
/// and name the path and value involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("write {value} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create cgroup directory {}: {source}", path.display())]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove cgroup directory {}: {source}", path.display())]
    Rmdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("statfs {}: {source}", path.display())]
    Statfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The safety check: refuse to touch anything that is not a cgroup
    /// filesystem (e.g. the tmpfs some hosts mount at /sys/fs/cgroup).
    #[error("refusing to use {}: not a cgroup filesystem (statfs magic {magic:#x})", path.display())]
    NotCgroupFs { path: PathBuf, magic: i64 },
    #[error("no cgroup filesystem is mounted (checked /proc/self/mountinfo)")]
    NoCgroupMounts,
    #[error("parse {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("cgroup controller {controller} is not available for {} (needed for {needed_for})", path.display())]
    ControllerMissing {
        controller: String,
        path: PathBuf,
        needed_for: String,
    },
    #[error("cgroup controller {controller} is not mounted (no cgroup hierarchy in /proc/self/mountinfo carries it; needed for {needed_for})")]
    ControllerNotMounted {
        controller: String,
        needed_for: String,
    },
    #[error("invalid resource {field}: {reason}")]
    InvalidResource { field: String, reason: String },
    #[error("{feature} is not supported on cgroup {version}")]
    Unsupported {
        feature: String,
        version: &'static str,
    },
    #[error("timed out after {ms} ms waiting for {} to become {want}", path.display())]
    Timeout {
        path: PathBuf,
        want: String,
        ms: u64,
    },
    /// The kernel refused a value; `reason` says why in the resource's
    /// terms (e.g. "not within the cpus 0-1 of the parent cgroup").
    #[error("invalid resource {field} {value:?}: {reason} (write {}: {source})", path.display())]
    Rejected {
        field: String,
        value: String,
        reason: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} for {}: {source}{}", path.display(), if log.is_empty() { String::new() } else { format!(" (verifier log: {log})") })]
    Bpf {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
        log: String,
    },
    #[error("send signal {sig} to pid {pid}: {source}")]
    Signal {
        pid: i32,
        sig: i32,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::InvalidResource {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
