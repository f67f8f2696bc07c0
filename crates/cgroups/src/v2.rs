//! The cgroup v2 (unified) driver.
//!
//! One directory in one hierarchy. Controllers must be enabled top-down: a
//! cgroup only gets `memory.*` files when its parent lists `memory` in
//! `cgroup.subtree_control`, so [`V2::create`] enables every available
//! controller in each ancestor between the mount point and the new leaf
//! (what runc does). A limit for a controller the leaf does not have is an
//! error naming the controller and the directory.
//!
//! **Devices:** cgroup v2 has no devices files; access control is an eBPF
//! program (`BPF_PROG_TYPE_CGROUP_DEVICE`) that [`crate::devices_bpf`]
//! generates from the rules and [`crate::bpf`] attaches to the cgroup
//! directory, replacing the one attached before (so `apply` with devices
//! twice leaves one program). On a fake test tree the program is generated
//! (validating the rules) but not loaded.
//!
//! Also ignored on v2 (no v2 equivalent, same as runc): memory `kernel`,
//! `kernelTCP`, `swappiness`, `disableOOMKiller`, `useHierarchy`, blkio
//! `leafWeight`, `network` (net_cls/net_prio are v1-only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fs::{self, FsCheck};
use crate::mountinfo::Hierarchy;
use crate::resources::{self, LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxRdma, LinuxResources};
use crate::stats::{self, CpuStats, MemoryStats, Stats};
use crate::{bpf, devices_bpf, CgroupError};

#[derive(Debug, Clone)]
pub(crate) struct V2 {
    pub hier: Hierarchy,
    pub dir: PathBuf,
    pub check: FsCheck,
}

/// `pids.max` value: 0 and negative mean unlimited.
pub(crate) fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

pub(crate) fn dev_id(major: i64, minor: i64) -> Result<String, CgroupError> {
    if major < 0 || minor < 0 {
        return Err(CgroupError::invalid(
            "blockIO device",
            format!("{major}:{minor} has a negative number"),
        ));
    }
    Ok(format!("{major}:{minor}"))
}

/// `rdma.max` lines: "mlx4_0 hca_handle=2 hca_object=2000".
pub(crate) fn rdma_lines(m: &BTreeMap<String, LinuxRdma>) -> Result<Vec<String>, CgroupError> {
    let mut out = Vec::new();
    for (dev, l) in m {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(CgroupError::invalid(
                "rdma",
                format!("{dev:?} is not a device name"),
            ));
        }
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line != *dev {
            out.push(line);
        }
    }
    Ok(out)
}

/// runc's numToStr: 0 is "unset", -1 is "max".
fn num(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".to_string()),
        v => Some(v.to_string()),
    }
}

/// v1 memsw semantics (memory+swap) -> v2 `memory.swap.max` (swap only),
/// runc's ConvertMemorySwapToCgroupV2Value.
pub(crate) fn swap_to_v2(swap: i64, limit: i64) -> Result<i64, CgroupError> {
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err(CgroupError::invalid(
            "memory.swap",
            format!("swap limit {swap} needs a memory limit"),
        ));
    }
    if limit < 0 || swap < 0 {
        return Err(CgroupError::invalid(
            "memory",
            format!("invalid limit {limit} / swap {swap}"),
        ));
    }
    if swap < limit {
        return Err(CgroupError::invalid(
            "memory.swap",
            format!("memory+swap {swap} is below the memory limit {limit}"),
        ));
    }
    Ok(swap - limit)
}

/// Enable controllers in `cgroup.subtree_control` of every ancestor of
/// `leaf` from `mount_point` down to the leaf's parent. `only` restricts the
/// set; `None` enables everything each level offers. Controllers a level
/// already enables are not written (the host's cgroups are left alone when
/// nothing is missing). When the combined write fails (e.g. a level with
/// processes), each controller is tried alone and failures are ignored:
/// `apply` reports a missing controller precisely later.
pub(crate) fn enable_controllers(
    mount_point: &Path,
    leaf: &Path,
    only: Option<&[&str]>,
    check: FsCheck,
) -> Result<(), CgroupError> {
    let rel = leaf
        .strip_prefix(mount_point)
        .map_err(|_| CgroupError::InvalidPath {
            path: leaf.display().to_string(),
            reason: format!("not below {}", mount_point.display()),
        })?;
    let mut level = mount_point.to_path_buf();
    for comp in rel.components() {
        let available = fs::read_opt(&level, "cgroup.controllers")?.unwrap_or_default();
        let enabled = fs::read_opt(&level, "cgroup.subtree_control")?.unwrap_or_default();
        let enabled: Vec<&str> = enabled.split_whitespace().collect();
        let missing: Vec<&str> = available
            .split_whitespace()
            .filter(|c| match only {
                Some(o) => o.contains(c),
                None => true,
            })
            .filter(|c| !enabled.contains(c))
            .collect();
        if !missing.is_empty() {
            let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
            if fs::write(&level, "cgroup.subtree_control", &all.join(" "), check).is_err() {
                for c in all {
                    let _ = fs::write(&level, "cgroup.subtree_control", &c, check);
                }
            }
        }
        level.push(comp);
    }
    Ok(())
}

impl V2 {
    /// A cpuset the kernel refused: say what the parent offers.
    fn cpuset_rejected(&self, e: CgroupError, field: &str, parent_file: &str) -> CgroupError {
        fs::explain(e, field, |_| {
            let parent = self.dir.parent().map(|p| fs::peek(p, parent_file));
            format!(
                "not within {parent_file} {} of the parent cgroup",
                parent.unwrap_or_default()
            )
        })
    }

    fn w(&self, file: &str, value: &str) -> Result<(), CgroupError> {
        fs::write(&self.dir, file, value, self.check)
    }

    pub fn create(&self) -> Result<(), CgroupError> {
        fs::ensure_cgroupfs(&self.hier.mount_point, self.check)?;
        fs::mkdir_below(&self.hier.mount_point, &self.dir, |_| Ok(()))?;
        enable_controllers(&self.hier.mount_point, &self.dir, None, self.check)
    }

    /// Controllers the leaf has (`cgroup.controllers`); `None` on a fake
    /// tree that has no such file (the real kernel always provides it).
    fn controllers(&self) -> Result<Option<Vec<String>>, CgroupError> {
        Ok(fs::read_opt(&self.dir, "cgroup.controllers")?
            .map(|s| s.split_whitespace().map(str::to_string).collect()))
    }

    fn need(&self, have: &Option<Vec<String>>, c: &str, for_: &str) -> Result<(), CgroupError> {
        match have {
            Some(list) if !list.iter().any(|x| x == c) => Err(CgroupError::ControllerMissing {
                controller: c.to_string(),
                path: self.dir.clone(),
                needed_for: for_.to_string(),
            }),
            _ => Ok(()),
        }
    }

    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        fs::ensure_cgroupfs(&self.dir, self.check)?;
        // Validate everything that can be validated before the first write.
        let device_prog = match &r.devices {
            Some(d) => Some(devices_bpf::device_filter(d)?),
            None => None,
        };
        if let Some(b) = &r.block_io {
            resources::check_blkio_weights(b)?;
        }
        if let Some(s) = r.cpu.as_ref().and_then(|c| c.shares).filter(|&s| s != 0) {
            resources::check_shares(s)?;
        }
        let have = self.controllers()?;
        if let Some(c) = &r.cpu {
            self.apply_cpu(c, &have)?;
        }
        if let Some(m) = &r.memory {
            self.apply_memory(m, &have)?;
        }
        if let Some(limit) = r.pids.as_ref().and_then(|p| p.limit) {
            self.need(&have, "pids", "pids.limit")?;
            self.w("pids.max", &pids_max(limit))?;
        }
        if let Some(b) = &r.block_io {
            self.apply_io(b, &have)?;
        }
        for l in r.hugepage_limits.iter().flatten() {
            resources::check_page_size(&l.page_size)?;
            self.need(&have, "hugetlb", "hugepageLimits")?;
            self.w(
                &format!("hugetlb.{}.max", l.page_size),
                &l.limit.to_string(),
            )?;
        }
        if let Some(rdma) = r.rdma.as_ref().filter(|m| !m.is_empty()) {
            self.need(&have, "rdma", "rdma")?;
            for line in rdma_lines(rdma)? {
                self.w("rdma.max", &line)?;
            }
        }
        if let Some(prog) = device_prog {
            if self.check == FsCheck::Statfs {
                bpf::set_device_filter(&self.dir, &prog)?;
            }
        }
        // Raw files last, so they override the converted values.
        for (k, v) in r.unified.iter().flatten() {
            resources::check_unified_key(k)?;
            if let Some((ctrl, _)) = k.split_once('.') {
                if ctrl != "cgroup" {
                    self.need(&have, ctrl, &format!("unified {k}"))?;
                }
            }
            self.w(k, v)?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu, have: &Option<Vec<String>>) -> Result<(), CgroupError> {
        if c.realtime_period.is_some_and(|v| v != 0) || c.realtime_runtime.is_some_and(|v| v != 0) {
            return Err(CgroupError::Unsupported {
                feature: "cpu.realtimePeriod/realtimeRuntime".into(),
                version: "v2",
            });
        }
        let quota = c.quota.unwrap_or(0);
        let period = c.period.unwrap_or(0);
        if quota < -1 {
            return Err(CgroupError::invalid(
                "cpu.quota",
                format!("{quota} is below -1"),
            ));
        }
        if let Some(s) = c.shares.filter(|&s| s != 0) {
            self.need(have, "cpu", "cpu.shares")?;
            self.w("cpu.weight", &resources::shares_to_weight(s).to_string())?;
        }
        if quota != 0 || period != 0 {
            self.need(have, "cpu", "cpu.quota/period")?;
            let mut v = if quota > 0 {
                quota.to_string()
            } else {
                "max".to_string()
            };
            if period != 0 {
                v.push_str(&format!(" {period}"));
            }
            self.w("cpu.max", &v)?;
        }
        if let Some(b) = c.burst {
            self.need(have, "cpu", "cpu.burst")?;
            self.w("cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = c.idle {
            self.need(have, "cpu", "cpu.idle")?;
            self.w("cpu.idle", &i.to_string())?;
        }
        if let Some(m) = c.mems.as_deref().filter(|s| !s.is_empty()) {
            self.need(have, "cpuset", "cpu.mems")?;
            self.w("cpuset.mems", m)
                .map_err(|e| self.cpuset_rejected(e, "cpu.mems", "cpuset.mems.effective"))?;
        }
        if let Some(cpus) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
            self.need(have, "cpuset", "cpu.cpus")?;
            self.w("cpuset.cpus", cpus)
                .map_err(|e| self.cpuset_rejected(e, "cpu.cpus", "cpuset.cpus.effective"))?;
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory, have: &Option<Vec<String>>) -> Result<(), CgroupError> {
        let limit = m.limit.unwrap_or(0);
        let reservation = m.reservation.unwrap_or(0);
        if limit < -1 || reservation < -1 {
            return Err(CgroupError::invalid(
                "memory",
                format!("limit {limit} / reservation {reservation} below -1"),
            ));
        }
        let swap = swap_to_v2(m.swap.unwrap_or(0), limit)?;
        let mut swap_str = num(swap);
        if swap_str.is_none() && swap == 0 && m.swap.unwrap_or(0) > 0 {
            swap_str = Some("0".to_string()); // swap == limit: no swap at all
        }
        if swap_str.is_none() && num(limit).is_none() && num(reservation).is_none() {
            return Ok(());
        }
        self.need(have, "memory", "memory")?;
        if m.check_before_update == Some(true) && limit > 0 {
            if let Some(cur) = fs::read_u64_opt(&self.dir, "memory.current")? {
                if cur > limit as u64 {
                    return Err(CgroupError::invalid(
                        "memory.limit",
                        format!(
                            "{limit} is below the current usage {cur} of {} (checkBeforeUpdate)",
                            self.dir.display()
                        ),
                    ));
                }
            }
        }
        if let Some(s) = swap_str {
            if let Err(e) = self.w("memory.swap.max", &s) {
                // Without swap accounting, "no swap" and "unlimited" hold.
                if !(fs::is_not_found(&e) && (s == "max" || s == "0")) {
                    return Err(e);
                }
            }
        }
        if let Some(l) = num(limit) {
            self.w("memory.max", &l)?;
        }
        if let Some(r) = num(reservation) {
            self.w("memory.low", &r)?;
        }
        Ok(())
    }

    fn apply_io(&self, b: &LinuxBlockIo, have: &Option<Vec<String>>) -> Result<(), CgroupError> {
        let lists = [
            ("rbps", &b.throttle_read_bps_device),
            ("wbps", &b.throttle_write_bps_device),
            ("riops", &b.throttle_read_iops_device),
            ("wiops", &b.throttle_write_iops_device),
        ];
        let any = b.weight.is_some()
            || b.weight_device.as_ref().is_some_and(|l| !l.is_empty())
            || lists
                .iter()
                .any(|(_, l)| l.as_ref().is_some_and(|l| !l.is_empty()));
        if !any {
            return Ok(());
        }
        self.need(have, "io", "blockIO")?;
        // With BFQ, io.bfq.weight takes the blkio range (1..1000) directly.
        let bfq = self.dir.join("io.bfq.weight").exists();
        if let Some(w) = b.weight {
            if bfq {
                self.w("io.bfq.weight", &w.to_string())?;
            } else {
                self.w(
                    "io.weight",
                    &resources::blkio_weight_to_io_weight(w).to_string(),
                )?;
            }
        }
        for wd in b.weight_device.iter().flatten() {
            let dev = dev_id(wd.major, wd.minor)?;
            if let Some(w) = wd.weight {
                if bfq {
                    self.w("io.bfq.weight", &format!("{dev} {w}"))?;
                } else {
                    let w = resources::blkio_weight_to_io_weight(w);
                    self.w("io.weight", &format!("{dev} {w}"))?;
                }
            }
        }
        for (key, list) in lists {
            for t in list.iter().flatten() {
                let dev = dev_id(t.major, t.minor)?;
                self.w("io.max", &format!("{dev} {key}={}", t.rate))?;
            }
        }
        Ok(())
    }

    /// `oom_kill` of `memory.events`; `None` without the memory controller.
    pub fn oom_kill_count(&self) -> Result<Option<u64>, CgroupError> {
        Ok(fs::read_opt(&self.dir, "memory.events")?.and_then(|e| fs::keyed_value(&e, "oom_kill")))
    }

    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let d = &self.dir;
        let mut s = Stats::default();
        if let Some(st) = fs::read_opt(d, "cpu.stat")? {
            let us = |k| fs::keyed_value(&st, k).map(|v| v.saturating_mul(1000));
            s.cpu = CpuStats {
                usage_total_ns: us("usage_usec"),
                usage_user_ns: us("user_usec"),
                usage_system_ns: us("system_usec"),
                nr_periods: fs::keyed_value(&st, "nr_periods"),
                nr_throttled: fs::keyed_value(&st, "nr_throttled"),
                throttled_time_ns: us("throttled_usec"),
                percpu_ns: Vec::new(),
            };
        }
        if let Some(usage) = fs::read_u64_opt(d, "memory.current")? {
            let st = fs::read_opt(d, "memory.stat")?.unwrap_or_default();
            let ev = fs::read_opt(d, "memory.events")?.unwrap_or_default();
            s.memory = MemoryStats {
                usage_bytes: Some(usage),
                max_usage_bytes: fs::read_u64_opt(d, "memory.peak")?,
                limit_bytes: fs::read_u64_opt(d, "memory.max")?,
                cache_bytes: fs::keyed_value(&st, "file"),
                swap_usage_bytes: fs::read_u64_opt(d, "memory.swap.current")?,
                oom_kill_count: fs::keyed_value(&ev, "oom_kill"),
                failcnt: fs::keyed_value(&ev, "max"),
                swap_limit_bytes: fs::read_u64_opt(d, "memory.swap.max")?,
                raw: stats::raw_map(&st),
            };
        }
        s.pids = stats::pids(d)?;
        if let Some(io) = fs::read_opt(d, "io.stat")? {
            let (bytes, ios) = stats::parse_v2_io(&io);
            s.blkio.io_service_bytes = bytes;
            s.blkio.io_serviced = ios;
        }
        Ok(s)
    }
}
