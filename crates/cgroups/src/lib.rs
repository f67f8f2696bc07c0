//! berth's cgroup layer: one [`Cgroup`] type, two drivers.
//!
//! # Design
//!
//! A container's cgroup is addressed by one path (see
//! [`resolve_cgroups_path`]) and realised differently per host:
//!
//! * **cgroup v1 / hybrid** ([`CgroupVersion::V1`]): every controller
//!   hierarchy is its own mount (`/sys/fs/cgroup/memory`, `.../cpu` or
//!   `.../cpu,cpuacct`, ...). The container gets one directory per mounted
//!   hierarchy, named `name=` hierarchies and the hybrid cgroup2 mount
//!   (`/sys/fs/cgroup/unified`) included, so its processes are tracked
//!   everywhere. Limits go to the hierarchy that owns the controller.
//! * **cgroup v2 / unified** ([`CgroupVersion::V2`]): one directory; on
//!   creation every ancestor enables the available controllers in
//!   `cgroup.subtree_control`.
//!
//! The driver is chosen by probing, never by hard-coded paths:
//! `/proc/self/mountinfo` lists the `cgroup`/`cgroup2` mounts and, in the
//! super options of v1 mounts, their controllers; any v1 mount carrying a
//! controller means v1, otherwise the cgroup2 mount means v2.
//!
//! # Safety rule
//!
//! Some hosts (this project's CI host among them) have a *tmpfs* at
//! `/sys/fs/cgroup`: `mkdir` and writes there succeed and limit nothing.
//! Before any directory is created, written or removed, the hierarchy is
//! checked with `statfs(2)` to be `cgroup` or `cgroup2`
//! ([`CgroupError::NotCgroupFs`] otherwise). Only [`Cgroup::open_with_root`],
//! the constructor for unit tests over a fake tree in a temporary directory,
//! skips that check; on such a tree every write is appended as a line to
//! the file (created if needed), so tests can assert on exact sequences.
//!
//! # Conversions
//!
//! Resources use the OCI spec's `linux.resources` ([`LinuxResources`]) and
//! are converted like runc does: v2 `cpu.weight = 1 + (shares-2)*9999/262142`,
//! `cpu.max = "<quota|max> [period]"`, `memory.max` with "max" for -1,
//! `memory.low` from the reservation, `memory.swap.max = swap - limit`
//! (the spec's swap is v1 memory+swap), `pids.max` "max" for 0/-1. See
//! `v1.rs` and `v2.rs` for each file and the documented gaps. Device rules
//! are the v1 devices controller's files on v1 and an eBPF program built by
//! [`devices_bpf`] on v2.

mod bpf;
pub mod devices_bpf;
mod error;
mod fs;
mod mountinfo;
mod path;
mod resources;
mod stats;
mod v1;
mod v2;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use error::CgroupError;
pub use fs::{CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
pub use path::resolve_cgroups_path;
pub use resources::{
    blkio_weight_to_io_weight, shares_to_weight, LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup,
    LinuxHugepageLimit, LinuxInterfacePriority, LinuxMemory, LinuxNetwork, LinuxPids, LinuxRdma,
    LinuxResources, LinuxThrottleDevice, LinuxWeightDevice,
};
pub use stats::{BlkioEntry, BlkioStats, CpuStats, MemoryStats, PidsStats, Stats};

use fs::FsCheck;
use mountinfo::Layout;

/// How long freeze/thaw wait for the kernel to report the new state.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long delete retries `rmdir` while dying tasks leave (EBUSY).
const DELETE_TIMEOUT: Duration = Duration::from_millis(1200);

/// Which cgroup driver a [`Cgroup`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    /// Per-controller v1 hierarchies (possibly with a hybrid cgroup2 mount).
    V1,
    /// The unified cgroup2 hierarchy.
    V2,
}

#[derive(Debug, Clone)]
enum Driver {
    V1(v1::V1),
    V2(v2::V2),
}

/// One container's cgroup across all hierarchies of the host.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: PathBuf,
    driver: Driver,
    check: FsCheck,
}

impl Cgroup {
    /// Probe the host (`/proc/self/mountinfo`, `/proc/self/cgroup`) and
    /// address cgroup `path` (from [`resolve_cgroups_path`]: absolute =
    /// from each hierarchy root, relative = below this process's own
    /// cgroup). No side effects; fails if a hierarchy is not a cgroupfs.
    pub fn open(path: &Path) -> Result<Self, CgroupError> {
        let read = |p: &str| {
            std::fs::read_to_string(p).map_err(|source| CgroupError::Read {
                path: PathBuf::from(p),
                source,
            })
        };
        let layout =
            mountinfo::parse_layout(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?);
        Self::from_layout(layout, path, FsCheck::Statfs)
    }

    /// For unit tests: a fake cgroup tree under `mount_root` (a temporary
    /// directory). For [`CgroupVersion::V2`], `mount_root` is the cgroup2
    /// mount. For [`CgroupVersion::V1`], each sub-directory named after its
    /// controllers (`memory`, `cpu,cpuacct`, `systemd` for `name=systemd`)
    /// is a hierarchy and `unified` a hybrid cgroup2 mount. Relative paths
    /// resolve below the root. The statfs safety check is skipped, and only
    /// here.
    pub fn open_with_root(
        mount_root: &Path,
        version: CgroupVersion,
        path: &Path,
    ) -> Result<Self, CgroupError> {
        let layout = mountinfo::fake_layout(mount_root, version == CgroupVersion::V2)?;
        Self::from_layout(layout, path, FsCheck::Skip)
    }

    fn from_layout(layout: Layout, path: &Path, check: FsCheck) -> Result<Self, CgroupError> {
        if path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(CgroupError::InvalidPath {
                path: path.display().to_string(),
                reason: "\"..\" components are not allowed".into(),
            });
        }
        let has_v1_controllers = layout
            .v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        let driver = if has_v1_controllers {
            Driver::V1(v1::V1::new(layout, path, check)?)
        } else if let Some(h) = layout.unified {
            let dir = h.dir_of(path)?;
            Driver::V2(v2::V2 {
                hier: h,
                dir,
                check,
            })
        } else {
            return Err(CgroupError::NoCgroupMounts);
        };
        let cg = Cgroup {
            path: path.to_path_buf(),
            driver,
            check,
        };
        for p in cg.mount_points() {
            fs::ensure_cgroupfs(&p, check)?;
        }
        Ok(cg)
    }

    fn mount_points(&self) -> Vec<PathBuf> {
        match &self.driver {
            Driver::V1(d) => d.all_dirs().map(|(h, _)| h.mount_point.clone()).collect(),
            Driver::V2(d) => vec![d.hier.mount_point.clone()],
        }
    }

    /// The cgroup path this was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every directory of this cgroup (one per hierarchy on v1).
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.driver {
            Driver::V1(d) => d.all_dirs().map(|(_, p)| p.clone()).collect(),
            Driver::V2(d) => vec![d.dir.clone()],
        }
    }

    pub fn version(&self) -> CgroupVersion {
        match self.driver {
            Driver::V1(_) => CgroupVersion::V1,
            Driver::V2(_) => CgroupVersion::V2,
        }
    }

    /// `mkdir -p` in every hierarchy (v1; new cpuset directories inherit
    /// the parent's cpus/mems) or the unified tree (v2; controllers enabled
    /// in every ancestor). An existing cgroup is joined, not an error.
    pub fn create(&self) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(d) => d.create(),
            Driver::V2(d) => d.create(),
        }
    }

    /// Write the limits in `r`. Unset fields are left alone.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(d) => d.apply(r),
            Driver::V2(d) => d.apply(r),
        }
    }

    /// Move process `pid` (and its threads) into the cgroup, in every
    /// hierarchy.
    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::invalid(
                "pid",
                format!("{pid} is not a process id"),
            ));
        }
        match &self.driver {
            Driver::V1(d) => d.add_task(pid),
            Driver::V2(d) => {
                fs::ensure_cgroupfs(&d.hier.mount_point, self.check)?;
                fs::write(&d.dir, "cgroup.procs", &pid.to_string(), self.check)
            }
        }
    }

    /// Processes directly in the cgroup (not in child cgroups).
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match &self.driver {
            Driver::V1(d) => d.procs_dir().ok_or(CgroupError::NoCgroupMounts)?,
            Driver::V2(d) => &d.dir,
        };
        let s = fs::read(dir, "cgroup.procs")?;
        let mut pids = fs::parse_procs(&dir.join("cgroup.procs"), &s)?;
        // In a child pid namespace, processes outside it read as 0.
        pids.retain(|&p| p > 0);
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Freeze every process and wait until the kernel reports it done
    /// (v1 `freezer.state` FROZEN, v2 `cgroup.events` "frozen 1"). On
    /// timeout the cgroup is thawed again and an error returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    /// The directory and file that control freezing.
    fn freeze_file(&self) -> Result<(&Path, &'static str), CgroupError> {
        match &self.driver {
            Driver::V1(d) => Ok((d.freezer_dir()?, "freezer.state")),
            Driver::V2(d) => Ok((&d.dir, "cgroup.freeze")),
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, file) = self.freeze_file()?;
        fs::ensure_cgroupfs(dir, self.check)?;
        let value = match (self.version(), frozen) {
            (CgroupVersion::V1, true) => "FROZEN",
            (CgroupVersion::V1, false) => "THAWED",
            (CgroupVersion::V2, true) => "1",
            (CgroupVersion::V2, false) => "0",
        };
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut delay = Duration::from_millis(1);
        let mut first = true;
        loop {
            // v1: rewrite the state on every round; tasks forked while the
            // freeze is in progress can leave it stuck in FREEZING (runc).
            if first || self.version() == CgroupVersion::V1 {
                fs::write(dir, file, value, self.check)?;
                first = false;
            }
            if self.is_frozen()? == frozen {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if frozen {
                    let _ = self.set_frozen(false);
                }
                return Err(CgroupError::Timeout {
                    path: dir.join(file),
                    want: value.to_string(),
                    ms: FREEZE_TIMEOUT.as_millis() as u64,
                });
            }
            sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether the cgroup is completely frozen (a freeze in progress is
    /// not frozen).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.driver {
            Driver::V1(d) => {
                let s = fs::read(d.freezer_dir()?, "freezer.state")?;
                Ok(last_line(&s) == "FROZEN")
            }
            Driver::V2(d) => {
                if self.check == FsCheck::Skip {
                    // Nothing updates cgroup.events in a fake tree.
                    let s = fs::read_opt(&d.dir, "cgroup.freeze")?.unwrap_or_default();
                    return Ok(last_line(&s) == "1");
                }
                let s = fs::read(&d.dir, "cgroup.events")?;
                Ok(fs::keyed_value(&s, "frozen") == Some(1))
            }
        }
    }

    fn can_freeze(&self) -> bool {
        match &self.driver {
            Driver::V1(d) => d
                .freezer_dir()
                .is_ok_and(|p| p.join("freezer.state").exists()),
            Driver::V2(d) => d.dir.join("cgroup.freeze").exists(),
        }
    }

    /// Send `sig` to every process of the cgroup. The cgroup is frozen
    /// while signalling so nothing forks away, then thawed (left frozen if
    /// it was frozen before, unless the signal is SIGKILL, which only takes
    /// effect once thawed). On v2 with `cgroup.kill`, SIGKILL is one write.
    pub fn kill_all(&self, sig: i32) -> Result<(), CgroupError> {
        if let Driver::V2(d) = &self.driver {
            if sig == libc::SIGKILL && d.dir.join("cgroup.kill").exists() {
                fs::ensure_cgroupfs(&d.dir, self.check)?;
                return fs::write(&d.dir, "cgroup.kill", "1", self.check);
            }
        }
        let freeze = self.can_freeze();
        let was_frozen = freeze && self.is_frozen()?;
        if freeze && !was_frozen {
            self.freeze()?;
        }
        let result = self.signal_procs(sig);
        if freeze && (!was_frozen || sig == libc::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    fn signal_procs(&self, sig: i32) -> Result<(), CgroupError> {
        for pid in self.procs()? {
            // SAFETY: kill(2) takes plain integers and touches no memory of
            // ours; pid is > 0 (procs() drops 0), so it never addresses a
            // process group or "every process".
            let rc = unsafe { libc::kill(pid, sig) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    return Err(CgroupError::Signal {
                        pid,
                        sig,
                        source: err,
                    });
                }
            }
        }
        Ok(())
    }

    /// Remove the cgroup (and any child cgroups, deepest first) in every
    /// hierarchy. `rmdir` is retried with backoff for about a second while
    /// it fails with EBUSY (exiting tasks still leaving). A missing
    /// directory is not an error. Parents are left in place.
    pub fn delete(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        let dirs: Vec<(PathBuf, PathBuf)> = match &self.driver {
            Driver::V1(d) => d
                .all_dirs()
                .map(|(h, p)| (h.mount_point.clone(), p.clone()))
                .collect(),
            Driver::V2(d) => vec![(d.hier.mount_point.clone(), d.dir.clone())],
        };
        for (mount, dir) in dirs {
            if dir == mount {
                continue; // never the hierarchy root
            }
            let res = fs::ensure_cgroupfs(&mount, self.check)
                .and_then(|()| remove_tree(&dir, self.check));
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether the cgroup directory exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.paths().iter().any(|p| p.is_dir())
    }

    /// How many processes the OOM killer has killed in this cgroup (v1
    /// `memory.oom_control`, v2 `memory.events`); `None` without the memory
    /// controller. One small read: cheap enough to poll for OOM events.
    pub fn oom_kill_count(&self) -> Result<Option<u64>, CgroupError> {
        match &self.driver {
            Driver::V1(d) => d.oom_kill_count(),
            Driver::V2(d) => d.oom_kill_count(),
        }
    }

    /// v2: how many eBPF device programs are attached directly to this
    /// cgroup (one after any number of `apply`s with devices); v1: `None`.
    pub fn device_programs(&self) -> Result<Option<usize>, CgroupError> {
        match &self.driver {
            Driver::V1(_) => Ok(None),
            Driver::V2(d) => bpf::device_filter_count(&d.dir).map(Some),
        }
    }

    /// Current usage and limits; controllers that are missing read as
    /// `None`.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.driver {
            Driver::V1(d) => d.stats(),
            Driver::V2(d) => d.stats(),
        }
    }
}

/// Check that `path` lives on a cgroup (v1 or v2) filesystem; the safety
/// check every creating or writing operation of this crate performs.
pub fn ensure_cgroupfs(path: &Path) -> Result<(), CgroupError> {
    fs::ensure_cgroupfs(path, FsCheck::Statfs)
}

fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Remove `dir` and its child cgroups, deepest first.
fn remove_tree(dir: &Path, check: FsCheck) -> Result<(), CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    if check == FsCheck::Skip {
        // A fake tree holds regular files, which rmdir would refuse.
        drop(entries);
        return match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CgroupError::Rmdir {
                path: dir.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        };
    }
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path(), check)?;
        }
    }
    let deadline = Instant::now() + DELETE_TIMEOUT;
    let mut delay = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod fake_tests;
