//! The cgroup v1 driver (including the "hybrid" layout: v1 controllers plus
//! a controller-less cgroup2 mount at `/sys/fs/cgroup/unified`).
//!
//! A container's cgroup is one directory per mounted hierarchy: every v1
//! hierarchy (including named ones such as `name=systemd`) and, when
//! present, the hybrid cgroup2 mount, so that the container's processes are
//! tracked everywhere the host tracks processes (what runc and crun do).
//! Limits are written only into the hierarchy that carries the controller;
//! a limit for a controller that is not mounted is an error naming it.

use std::path::{Path, PathBuf};

use crate::fs::{self, FsCheck};
use crate::mountinfo::{Hierarchy, Layout};
use crate::resources::{self, LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use crate::stats::{self, CpuStats, MemoryStats, Stats};
use crate::{v2, CgroupError};

#[derive(Debug, Clone)]
pub(crate) struct V1 {
    /// (hierarchy, this cgroup's directory in it)
    pub dirs: Vec<(Hierarchy, PathBuf)>,
    /// The hybrid cgroup2 mount, if any.
    pub unified: Option<(Hierarchy, PathBuf)>,
    pub check: FsCheck,
}

/// A cpuset the kernel refused: say which cpus/mems the parent offers.
fn cpuset_rejected(e: CgroupError, dir: &Path, field: &str, file: &str) -> CgroupError {
    fs::explain(e, field, |_| {
        let parent = dir.parent().map(|p| fs::peek(p, file));
        format!(
            "not within {file} {} of the parent cgroup",
            parent.unwrap_or_default()
        )
    })
}

/// A memory limit the kernel refused: EBUSY means it is below the usage
/// the kernel could not reclaim.
fn memory_rejected(e: CgroupError, dir: &Path, file: &str) -> CgroupError {
    let field = if file.contains("memsw") {
        "memory.swap"
    } else {
        "memory.limit"
    };
    fs::explain(e, field, |errno| {
        if errno == libc::EBUSY {
            format!(
                "below the current usage of {} bytes, which the kernel could not reclaim",
                fs::peek(dir, "memory.usage_in_bytes")
            )
        } else {
            "refused by the kernel".to_string()
        }
    })
}

impl V1 {
    pub fn new(layout: Layout, path: &Path, check: FsCheck) -> Result<Self, CgroupError> {
        let mut dirs = Vec::new();
        for h in layout.v1 {
            let d = h.dir_of(path)?;
            dirs.push((h, d));
        }
        let unified = match layout.unified {
            Some(h) => {
                let d = h.dir_of(path)?;
                Some((h, d))
            }
            None => None,
        };
        Ok(V1 {
            dirs,
            unified,
            check,
        })
    }

    /// Every directory of this cgroup, v1 hierarchies first.
    pub fn all_dirs(&self) -> impl Iterator<Item = &(Hierarchy, PathBuf)> {
        self.dirs.iter().chain(self.unified.iter())
    }

    /// This cgroup's directory in the hierarchy carrying `controller`.
    fn find(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.has(controller))
            .map(|(_, d)| d.as_path())
    }

    /// Like `find`, for writing: the controller must be mounted and the
    /// directory must be on a cgroup filesystem.
    fn dir(&self, controller: &str, needed_for: &str) -> Result<&Path, CgroupError> {
        let d = self
            .find(controller)
            .ok_or_else(|| CgroupError::ControllerNotMounted {
                controller: controller.to_string(),
                needed_for: needed_for.to_string(),
            })?;
        fs::ensure_cgroupfs(d, self.check)?;
        Ok(d)
    }

    fn w(&self, dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
        fs::write(dir, file, value, self.check)
    }

    pub fn create(&self) -> Result<(), CgroupError> {
        for (h, dir) in self.all_dirs() {
            fs::ensure_cgroupfs(&h.mount_point, self.check)?;
            let cpuset = h.has("cpuset");
            fs::mkdir_below(&h.mount_point, dir, |new| {
                if cpuset {
                    self.copy_cpuset_from_parent(new)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// A new v1 cpuset cgroup starts with empty `cpuset.cpus`/`cpuset.mems`
    /// and refuses tasks until they are set: copy them from the parent.
    fn copy_cpuset_from_parent(&self, dir: &Path) -> Result<(), CgroupError> {
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_opt(dir, file)?.unwrap_or_default();
            if !mine.trim().is_empty() {
                continue;
            }
            let theirs = fs::read(parent, file)?;
            let theirs = theirs.trim();
            if !theirs.is_empty() {
                self.w(dir, file, theirs)?;
            }
        }
        Ok(())
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if r.unified.as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::Unsupported {
                feature: "linux.resources.unified".into(),
                version: "v1",
            });
        }
        if let Some(m) = &r.memory {
            self.apply_memory(m)?;
        }
        if let Some(c) = &r.cpu {
            self.apply_cpu(c)?;
        }
        if let Some(limit) = r.pids.as_ref().and_then(|p| p.limit) {
            let d = self.dir("pids", "pids.limit")?;
            self.w(d, "pids.max", &v2::pids_max(limit))?;
        }
        if let Some(b) = &r.block_io {
            self.apply_blkio(b)?;
        }
        if let Some(list) = r.hugepage_limits.as_ref().filter(|l| !l.is_empty()) {
            self.apply_hugetlb(list)?;
        }
        if let Some(n) = &r.network {
            if let Some(id) = n.class_id {
                let d = self.dir("net_cls", "network.classID")?;
                self.w(d, "net_cls.classid", &id.to_string())?;
            }
            for p in n.priorities.iter().flatten() {
                if p.name.is_empty() || p.name.contains(char::is_whitespace) {
                    return Err(CgroupError::invalid(
                        "network.priorities.name",
                        format!("{:?} is not an interface name", p.name),
                    ));
                }
                let d = self.dir("net_prio", "network.priorities")?;
                self.w(
                    d,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name, p.priority),
                )?;
            }
        }
        if let Some(rdma) = r.rdma.as_ref().filter(|m| !m.is_empty()) {
            let d = self.dir("rdma", "rdma")?;
            for line in v2::rdma_lines(rdma)? {
                self.w(d, "rdma.max", &line)?;
            }
        }
        if let Some(devices) = &r.devices {
            self.apply_devices(devices)?;
        }
        Ok(())
    }

    /// Memory and swap, with runc's ordering: memsw must stay >= the memory
    /// limit at every step, so when the new memsw exceeds the current limit
    /// (raising), memsw is written first; otherwise the limit first.
    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let wanted = m.limit.is_some()
            || m.swap.is_some()
            || m.reservation.is_some()
            || m.kernel_tcp.is_some()
            || m.swappiness.is_some()
            || m.disable_oom_killer == Some(true)
            || m.use_hierarchy == Some(true);
        if !wanted {
            return Ok(());
        }
        let d = self.dir("memory", "memory")?;
        let limit = m.limit.unwrap_or(0);
        let mut swap = m.swap.unwrap_or(0);
        for (name, v) in [("memory.limit", limit), ("memory.swap", swap)] {
            if v < -1 {
                return Err(CgroupError::invalid(name, format!("{v} is below -1")));
            }
        }
        if limit > 0 && swap > 0 && swap < limit {
            return Err(CgroupError::invalid(
                "memory.swap",
                format!("memory+swap {swap} is below the memory limit {limit}"),
            ));
        }
        // "limit -1, swap unset" means both unlimited (runc).
        if limit == -1 && swap == 0 {
            swap = -1;
        }
        let memsw = "memory.memsw.limit_in_bytes";
        let has_memsw = d.join(memsw).exists();
        if swap != 0 && !has_memsw {
            if swap == -1 {
                swap = 0; // nothing to lift without swap accounting
            } else {
                return Err(CgroupError::Unsupported {
                    feature: format!(
                        "memory.swap ({} is missing: swap accounting is off; boot with swapaccount=1)",
                        d.join(memsw).display()
                    ),
                    version: "v1",
                });
            }
        }
        let limit_file = "memory.limit_in_bytes";
        let w = |file: &str, v: i64| {
            self.w(d, file, &v.to_string())
                .map_err(|e| memory_rejected(e, d, file))
        };
        if limit != 0 && swap != 0 {
            let swap_first = swap == -1 || {
                let cur = fs::read(d, limit_file)?;
                let cur = fs::parse_u64_or_max(&d.join(limit_file), &cur)?.unwrap_or(u64::MAX);
                u64::try_from(swap).is_ok_and(|s| cur < s)
            };
            if swap_first {
                w(memsw, swap)?;
                w(limit_file, limit)?;
            } else {
                w(limit_file, limit)?;
                w(memsw, swap)?;
            }
        } else {
            if limit != 0 {
                w(limit_file, limit)?;
            }
            if swap != 0 {
                w(memsw, swap)?;
            }
        }
        if let Some(r) = m.reservation.filter(|&r| r != 0) {
            self.w(d, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
        // `kernel` (kmem.limit_in_bytes) is deprecated and ignored by the
        // kernel since 5.16 (and by runc 1.2); `kernelTCP` still works.
        if let Some(t) = m.kernel_tcp.filter(|&t| t != 0) {
            self.w(d, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
        }
        if let Some(s) = m.swappiness {
            if s > 100 {
                return Err(CgroupError::invalid(
                    "memory.swappiness",
                    format!("{s} is above 100"),
                ));
            }
            self.w(d, "memory.swappiness", &s.to_string())?;
        }
        if m.disable_oom_killer == Some(true) {
            self.w(d, "memory.oom_control", "1")?;
        }
        if m.use_hierarchy == Some(true) {
            self.w(d, "memory.use_hierarchy", "1")?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<(), CgroupError> {
        let quota = c.quota.unwrap_or(0);
        let period = c.period.unwrap_or(0);
        let cpu_wanted = c.shares.is_some_and(|s| s != 0)
            || quota != 0
            || period != 0
            || c.burst.is_some()
            || c.realtime_period.is_some_and(|v| v != 0)
            || c.realtime_runtime.is_some_and(|v| v != 0)
            || c.idle.is_some();
        if cpu_wanted {
            let d = self.dir("cpu", "cpu")?;
            if let Some(s) = c.shares.filter(|&s| s != 0) {
                resources::check_shares(s)?;
                self.w(d, "cpu.shares", &s.to_string())?;
            }
            if quota < -1 {
                return Err(CgroupError::invalid(
                    "cpu.quota",
                    format!("{quota} is below -1"),
                ));
            }
            // The period write can fail with EINVAL while the old quota does
            // not fit the new period; then retry it after the quota (runc).
            let mut retry_period = false;
            if period != 0 {
                if let Err(e) = self.w(d, "cpu.cfs_period_us", &period.to_string()) {
                    if fs::raw_os_error(&e) != Some(libc::EINVAL) || quota == 0 {
                        return Err(e);
                    }
                    retry_period = true;
                }
            }
            if quota != 0 {
                self.w(d, "cpu.cfs_quota_us", &quota.to_string())?;
                if retry_period {
                    self.w(d, "cpu.cfs_period_us", &period.to_string())?;
                }
            }
            if let Some(b) = c.burst {
                self.w(d, "cpu.cfs_burst_us", &b.to_string())?;
            }
            if let Some(p) = c.realtime_period.filter(|&p| p != 0) {
                self.w(d, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(r) = c.realtime_runtime.filter(|&r| r != 0) {
                self.w(d, "cpu.rt_runtime_us", &r.to_string())?;
            }
            if let Some(i) = c.idle {
                self.w(d, "cpu.idle", &i.to_string())?;
            }
        }
        let cpus = c.cpus.as_deref().filter(|s| !s.is_empty());
        let mems = c.mems.as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let d = self.dir("cpuset", "cpu.cpus/cpu.mems")?;
            // mems first: a cpuset with cpus but no mems is still unusable,
            // and the kernel checks each against the parent independently.
            if let Some(m) = mems {
                self.w(d, "cpuset.mems", m)
                    .map_err(|e| cpuset_rejected(e, d, "cpu.mems", "cpuset.mems"))?;
            }
            if let Some(c) = cpus {
                self.w(d, "cpuset.cpus", c)
                    .map_err(|e| cpuset_rejected(e, d, "cpu.cpus", "cpuset.cpus"))?;
            }
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let lists = [
            (
                "blkio.throttle.read_bps_device",
                &b.throttle_read_bps_device,
            ),
            (
                "blkio.throttle.write_bps_device",
                &b.throttle_write_bps_device,
            ),
            (
                "blkio.throttle.read_iops_device",
                &b.throttle_read_iops_device,
            ),
            (
                "blkio.throttle.write_iops_device",
                &b.throttle_write_iops_device,
            ),
        ];
        let any = b.weight.is_some()
            || b.leaf_weight.is_some()
            || b.weight_device.as_ref().is_some_and(|l| !l.is_empty())
            || lists
                .iter()
                .any(|(_, l)| l.as_ref().is_some_and(|l| !l.is_empty()));
        if !any {
            return Ok(());
        }
        resources::check_blkio_weights(b)?;
        let d = self.dir("blkio", "blockIO")?;
        if let Some(w) = b.weight {
            // Kernels with BFQ only expose blkio.bfq.weight.
            let file = if d.join("blkio.weight").exists() || self.check == FsCheck::Skip {
                "blkio.weight"
            } else {
                "blkio.bfq.weight"
            };
            self.w(d, file, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight {
            self.w(d, "blkio.leaf_weight", &w.to_string())?;
        }
        for wd in b.weight_device.iter().flatten() {
            let dev = v2::dev_id(wd.major, wd.minor)?;
            if let Some(w) = wd.weight {
                self.w(d, "blkio.weight_device", &format!("{dev} {w}"))?;
            }
            if let Some(w) = wd.leaf_weight {
                self.w(d, "blkio.leaf_weight_device", &format!("{dev} {w}"))?;
            }
        }
        for (file, list) in lists {
            for t in list.iter().flatten() {
                let dev = v2::dev_id(t.major, t.minor)?;
                self.w(d, file, &format!("{dev} {}", t.rate))?;
            }
        }
        Ok(())
    }

    /// hugetlb is a v1 controller on most hosts; on a hybrid host where it
    /// is not mounted as v1 but offered by the cgroup2 mount, use that.
    fn apply_hugetlb(&self, list: &[resources::LinuxHugepageLimit]) -> Result<(), CgroupError> {
        for l in list {
            resources::check_page_size(&l.page_size)?;
        }
        if let Some(d) = self.find("hugetlb") {
            fs::ensure_cgroupfs(d, self.check)?;
            for l in list {
                let file = format!("hugetlb.{}.limit_in_bytes", l.page_size);
                self.w(d, &file, &l.limit.to_string())?;
            }
            return Ok(());
        }
        let Some((h, d)) = &self.unified else {
            return Err(CgroupError::ControllerNotMounted {
                controller: "hugetlb".into(),
                needed_for: "hugepageLimits".into(),
            });
        };
        v2::enable_controllers(&h.mount_point, d, Some(&["hugetlb"]), self.check)?;
        for l in list {
            let file = format!("hugetlb.{}.max", l.page_size);
            self.w(d, &file, &l.limit.to_string())?;
        }
        Ok(())
    }

    /// Spec semantics: start from "deny all", then apply the rules in order.
    /// All rules are validated before the first write. (Writing "a" to
    /// devices.deny briefly denies everything to running tasks on an
    /// update; at create time there are none.)
    fn apply_devices(&self, devices: &[resources::LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        let rules = devices
            .iter()
            .map(|d| Ok((d.allow, resources::device_rule(d)?)))
            .collect::<Result<Vec<_>, CgroupError>>()?;
        let d = self.dir("devices", "devices")?;
        self.w(d, "devices.deny", "a")?;
        for (allow, rule) in rules {
            let file = if allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            self.w(d, file, &rule)?;
        }
        Ok(())
    }

    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for (h, dir) in self.all_dirs() {
            fs::ensure_cgroupfs(&h.mount_point, self.check)?;
            self.w(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// The directory whose `cgroup.procs` is authoritative for "who is in
    /// the container": freezer (the one kill_all freezes), else the first.
    pub fn procs_dir(&self) -> Option<&Path> {
        ["freezer", "pids", "memory", "cpu"]
            .iter()
            .find_map(|c| self.find(c))
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()))
            .or_else(|| self.unified.as_ref().map(|(_, d)| d.as_path()))
    }

    /// `oom_kill` of `memory.oom_control`; `None` without the controller.
    pub fn oom_kill_count(&self) -> Result<Option<u64>, CgroupError> {
        let Some(d) = self.find("memory") else {
            return Ok(None);
        };
        Ok(fs::read_opt(d, "memory.oom_control")?.and_then(|o| fs::keyed_value(&o, "oom_kill")))
    }

    pub fn freezer_dir(&self) -> Result<&Path, CgroupError> {
        self.find("freezer")
            .ok_or_else(|| CgroupError::ControllerNotMounted {
                controller: "freezer".into(),
                needed_for: "freeze/thaw".into(),
            })
    }

    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        if let Some(d) = self.find("cpuacct") {
            s.cpu.usage_total_ns = fs::read_u64_opt(d, "cpuacct.usage")?;
            s.cpu.usage_user_ns = fs::read_u64_opt(d, "cpuacct.usage_user")?;
            s.cpu.usage_system_ns = fs::read_u64_opt(d, "cpuacct.usage_sys")?;
            s.cpu.percpu_ns =
                stats::parse_percpu(&fs::read_opt(d, "cpuacct.usage_percpu")?.unwrap_or_default());
        }
        if let Some(d) = self.find("cpu") {
            if let Some(st) = fs::read_opt(d, "cpu.stat")? {
                s.cpu = CpuStats {
                    nr_periods: fs::keyed_value(&st, "nr_periods"),
                    nr_throttled: fs::keyed_value(&st, "nr_throttled"),
                    throttled_time_ns: fs::keyed_value(&st, "throttled_time"),
                    ..s.cpu
                };
            }
        }
        if let Some(d) = self.find("memory") {
            let st = fs::read_opt(d, "memory.stat")?.unwrap_or_default();
            let usage = fs::read_u64_opt(d, "memory.usage_in_bytes")?;
            let memsw = fs::read_u64_opt(d, "memory.memsw.usage_in_bytes")?;
            s.memory = MemoryStats {
                usage_bytes: usage,
                max_usage_bytes: fs::read_u64_opt(d, "memory.max_usage_in_bytes")?,
                limit_bytes: stats::v1_limit(fs::read_u64_opt(d, "memory.limit_in_bytes")?),
                cache_bytes: fs::keyed_value(&st, "total_cache")
                    .or_else(|| fs::keyed_value(&st, "cache")),
                swap_usage_bytes: memsw.zip(usage).map(|(sw, u)| sw.saturating_sub(u)),
                oom_kill_count: fs::read_opt(d, "memory.oom_control")?
                    .and_then(|o| fs::keyed_value(&o, "oom_kill")),
                failcnt: fs::read_u64_opt(d, "memory.failcnt")?,
                swap_limit_bytes: stats::v1_limit(fs::read_u64_opt(
                    d,
                    "memory.memsw.limit_in_bytes",
                )?),
                raw: stats::raw_map(&st),
            };
        }
        if let Some(d) = self.find("pids") {
            s.pids = stats::pids(d)?;
        }
        if let Some(d) = self.find("blkio") {
            let bytes = fs::read_opt(d, "blkio.throttle.io_service_bytes")?.unwrap_or_default();
            let ios = fs::read_opt(d, "blkio.throttle.io_serviced")?.unwrap_or_default();
            s.blkio.io_service_bytes = stats::parse_v1_blkio(&bytes);
            s.blkio.io_serviced = stats::parse_v1_blkio(&ios);
        }
        Ok(s)
    }
}
