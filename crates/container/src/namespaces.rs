//! Which namespaces a container gets, and entering them.
//!
//! New namespaces are made by the `clone(2)` that creates the init, in one
//! step, so they are owned by the new user namespace when there is one. Two
//! exceptions: the cgroup namespace is unshared by the init only after the
//! runtime has put it in its cgroup (so the namespace's root is the
//! container's cgroup), and the time namespace is unshared by the runtime
//! itself before the clone (`clone(2)` has no flag bit for it; the offsets
//! must be written before any process enters it).
//!
//! Namespaces given by `path` are joined with `setns(2)`: pid and time by
//! the runtime before the clone (they apply to children only), the rest by
//! the init right after it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::spec::{IdMapping, NamespaceType, Spec, TimeOffset};

pub const CLONE_NEWTIME: libc::c_int = 0x80;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("open {kind} namespace {path}: {source}")]
    Open {
        kind: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("join {kind} namespace {path}: {source}")]
    Join {
        kind: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("unshare {what}: {source}")]
    Unshare {
        what: &'static str,
        source: io::Error,
    },
    #[error("write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Unsupported(String),
}

/// A namespace to join: its type, the path it came from, an open fd.
#[derive(Debug)]
pub struct Join {
    pub kind: NamespaceType,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

#[derive(Debug, Default)]
pub struct NamespacePlan {
    /// `CLONE_NEW*` flags for the clone (user, pid, net, ipc, uts, mount).
    pub clone_flags: libc::c_int,
    pub new_user: bool,
    pub new_cgroup: bool,
    pub new_time: bool,
    pub joins: Vec<Join>,
}

impl NamespacePlan {
    pub fn from_spec(spec: &Spec) -> Result<NamespacePlan, NamespaceError> {
        let mut plan = NamespacePlan::default();
        for ns in &spec.linux().namespaces {
            match &ns.path {
                Some(path) => plan.joins.push(Join {
                    kind: ns.kind,
                    path: path.clone(),
                    fd: open_ns(ns.kind, path)?,
                }),
                None => match ns.kind {
                    NamespaceType::Cgroup => plan.new_cgroup = true,
                    NamespaceType::Time => plan.new_time = true,
                    NamespaceType::User => {
                        plan.new_user = true;
                        plan.clone_flags |= libc::CLONE_NEWUSER;
                    }
                    other => plan.clone_flags |= other.clone_flag(),
                },
            }
        }
        Ok(plan)
    }

    /// True when the init cannot be cloned in one step: a user namespace
    /// is joined by path, or a new one must be made after joining others
    /// (runc joins every namespace given by path before it creates the new
    /// user namespace, so the rest are owned by it). See `create::spawn`.
    pub fn needs_two_stages(&self) -> bool {
        let joins_user = self.joins.iter().any(|j| j.kind == NamespaceType::User);
        let joins_owned = self
            .joins
            .iter()
            .any(|j| !matches!(j.kind, NamespaceType::Pid | NamespaceType::Time));
        joins_user || (self.new_user && joins_owned)
    }

    /// In the intermediate process of a two-stage spawn: join the user
    /// namespace given by path, then the other namespaces given by path.
    pub fn join_all_paths(&self) -> Result<(), NamespaceError> {
        for j in self.joins.iter().filter(|j| j.kind == NamespaceType::User) {
            setns(j)?;
        }
        self.join_in_child()
    }

    pub fn has(&self, kind: NamespaceType) -> bool {
        self.joins.iter().any(|j| j.kind == kind)
            || match kind {
                NamespaceType::Cgroup => self.new_cgroup,
                NamespaceType::Time => self.new_time,
                other => self.clone_flags & other.clone_flag() != 0,
            }
    }

    /// In the runtime, before the clone: join pid/time namespaces given by
    /// path and make a new time namespace (all apply to children only).
    pub fn enter_for_children(
        &self,
        offsets: Option<&std::collections::BTreeMap<String, TimeOffset>>,
    ) -> Result<(), NamespaceError> {
        for j in &self.joins {
            if matches!(j.kind, NamespaceType::Pid | NamespaceType::Time) {
                setns(j)?;
            }
        }
        if self.new_time {
            unshare(CLONE_NEWTIME, "time namespace")?;
            if let Some(offsets) = offsets {
                write_time_offsets(offsets)?;
            }
        }
        Ok(())
    }

    /// In the init, after the clone: join the other namespaces by path.
    pub fn join_in_child(&self) -> Result<(), NamespaceError> {
        // The mount namespace last: the others' fds were opened before.
        let order = [
            NamespaceType::Ipc,
            NamespaceType::Uts,
            NamespaceType::Network,
            NamespaceType::Cgroup,
            NamespaceType::Mount,
        ];
        for kind in order {
            for j in self.joins.iter().filter(|j| j.kind == kind) {
                setns(j)?;
            }
        }
        Ok(())
    }
}

fn open_ns(kind: NamespaceType, path: &Path) -> Result<OwnedFd, NamespaceError> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| NamespaceError::Open {
            kind: kind.name(),
            path: path.to_path_buf(),
            source,
        })
}

pub fn setns(j: &Join) -> Result<(), NamespaceError> {
    // SAFETY: setns on an fd we own; the flag restricts it to the expected type.
    let rc = unsafe { libc::setns(j.fd.as_raw_fd(), j.kind.clone_flag_for_setns()) };
    if rc != 0 {
        return Err(NamespaceError::Join {
            kind: j.kind.name(),
            path: j.path.clone(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl NamespaceType {
    /// The flag `setns(2)` checks the fd against (time uses CLONE_NEWTIME).
    pub fn clone_flag_for_setns(self) -> libc::c_int {
        match self {
            NamespaceType::Time => CLONE_NEWTIME,
            other => other.clone_flag(),
        }
    }
}

pub fn unshare(flags: libc::c_int, what: &'static str) -> Result<(), NamespaceError> {
    // SAFETY: unshare takes only flags.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(NamespaceError::Unshare {
            what,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn write_time_offsets(
    offsets: &std::collections::BTreeMap<String, TimeOffset>,
) -> Result<(), NamespaceError> {
    let path = Path::new("/proc/self/timens_offsets");
    let mut text = String::new();
    for (clock, off) in offsets {
        let name = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(NamespaceError::Unsupported(format!(
                    "linux.timeOffsets: unknown clock {other:?}"
                )))
            }
        };
        text.push_str(&format!("{name} {} {}\n", off.secs, off.nanosecs));
    }
    write_file(path, text.as_bytes())
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), NamespaceError> {
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(data));
    res.map_err(|source| NamespaceError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Writes the id maps of a child in a new user namespace (from the parent).
pub fn write_id_maps(
    pid: i32,
    uid_maps: &[IdMapping],
    gid_maps: &[IdMapping],
) -> Result<(), NamespaceError> {
    if uid_maps.is_empty() || gid_maps.is_empty() {
        return Err(NamespaceError::Unsupported(
            "linux.uidMappings/gidMappings: a new user namespace needs both".into(),
        ));
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        write_file(&PathBuf::from(format!("/proc/{pid}/setgroups")), b"deny")?;
    }
    write_file(
        &PathBuf::from(format!("/proc/{pid}/uid_map")),
        map_text(uid_maps).as_bytes(),
    )?;
    write_file(
        &PathBuf::from(format!("/proc/{pid}/gid_map")),
        map_text(gid_maps).as_bytes(),
    )
}

/// Like `fork(2)`, but the child starts in the new namespaces of `flags`.
///
/// Returns 0 in the child and the child's pid in the parent. The caller
/// must be single-threaded (see ARCHITECTURE.md).
pub fn clone_process(flags: libc::c_int) -> io::Result<i32> {
    // SAFETY: a raw clone without CLONE_VM and with a null stack behaves as
    // fork(2): the child gets a copy of the address space and continues
    // here. The process is single-threaded, so no lock is held by another
    // thread at this point.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as i32)
}

/// The inode of `/proc/<pid>/ns/<name>`, to compare namespaces.
pub fn ns_inode(pid: &str, kind: NamespaceType) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name()))
        .ok()
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"r"}},"linux":{{"namespaces":{ns}}}}}"#
        );
        Spec::parse(Path::new("config.json"), json.as_bytes()).expect("spec")
    }

    #[test]
    fn new_namespaces_become_clone_flags() {
        let plan = NamespacePlan::from_spec(&spec(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network"},{"type":"cgroup"}]"#,
        ))
        .expect("plan");
        assert_eq!(
            plan.clone_flags,
            libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET
        );
        assert!(plan.new_cgroup, "cgroup ns is unshared later, not cloned");
        assert!(plan.has(NamespaceType::Cgroup));
        assert!(!plan.has(NamespaceType::Uts));
    }

    #[test]
    fn user_namespace_cases_need_two_stages() {
        let plan = NamespacePlan::from_spec(&spec(
            r#"[{"type":"user"},{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"}]"#,
        ))
        .expect("plan");
        assert!(plan.needs_two_stages());
        let plan = NamespacePlan::from_spec(&spec(
            r#"[{"type":"user"},{"type":"mount"},{"type":"network"}]"#,
        ))
        .expect("plan");
        assert!(
            !plan.needs_two_stages(),
            "all-new namespaces clone in one step"
        );
    }

    #[test]
    fn joined_namespace_is_opened() {
        let plan =
            NamespacePlan::from_spec(&spec(r#"[{"type":"network","path":"/proc/self/ns/net"}]"#))
                .expect("plan");
        assert_eq!(plan.clone_flags, 0);
        assert_eq!(plan.joins.len(), 1);
    }

    #[test]
    fn missing_namespace_path_names_it() {
        let err = NamespacePlan::from_spec(&spec(
            r#"[{"type":"network","path":"/nonexistent/berth-ns"}]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/berth-ns"), "{err}");
    }

    #[test]
    fn id_map_text() {
        let maps = [IdMapping {
            container_id: 0,
            host_id: 100000,
            size: 65536,
        }];
        assert_eq!(map_text(&maps), "0 100000 65536\n");
    }
}
