//! Resource usage as read from a cgroup (`berth stats`, `runc events`).
//!
//! Every field is optional: a controller that is not mounted or not enabled
//! yields `None`, not an error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::fs;
use crate::CgroupError;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuStats {
    pub usage_total_ns: Option<u64>,
    pub usage_user_ns: Option<u64>,
    pub usage_system_ns: Option<u64>,
    /// Per-CPU usage (v1 `cpuacct.usage_percpu`; empty on v2).
    pub percpu_ns: Vec<u64>,
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_time_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MemoryStats {
    pub usage_bytes: Option<u64>,
    pub max_usage_bytes: Option<u64>,
    /// `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache_bytes: Option<u64>,
    pub swap_usage_bytes: Option<u64>,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kill_count: Option<u64>,
    /// Times the limit was hit (v1 `memory.failcnt`, v2 `memory.events`
    /// `max`).
    pub failcnt: Option<u64>,
    /// Swap limit (v1: memory+swap, `memsw`; v2: swap only); `None` when
    /// unlimited or without swap accounting.
    pub swap_limit_bytes: Option<u64>,
    /// `memory.stat` as is.
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PidsStats {
    pub current: Option<u64>,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BlkioStats {
    /// Bytes transferred per device and operation ("read", "write").
    pub io_service_bytes: Vec<BlkioEntry>,
    /// Operations per device and operation ("read", "write").
    pub io_serviced: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// v1 reports "unlimited" as a huge page-aligned number.
pub(crate) fn v1_limit(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v < (1u64 << 62))
}

fn dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// v1 `blkio.throttle.io_service_bytes`: "8:0 Read 123" lines plus "Total".
pub(crate) fn parse_v1_blkio(s: &str) -> Vec<BlkioEntry> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (major, minor) = dev(it.next()?)?;
            let op = it.next()?.to_ascii_lowercase();
            let value = it.next()?.parse().ok()?;
            Some(BlkioEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// v2 `io.stat`: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...".
pub(crate) fn parse_v2_io(s: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for l in s.lines() {
        let mut it = l.split_whitespace();
        let Some((major, minor)) = it.next().and_then(dev) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "read"),
                "wbytes" => (&mut bytes, "write"),
                "rios" => (&mut ios, "read"),
                "wios" => (&mut ios, "write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

pub(crate) fn pids(dir: &Path) -> Result<PidsStats, CgroupError> {
    Ok(PidsStats {
        current: fs::read_u64_opt(dir, "pids.current")?,
        limit: fs::read_u64_opt(dir, "pids.max")?,
    })
}

/// A whole flat-keyed file (`memory.stat`) as a map.
pub(crate) fn raw_map(s: &str) -> BTreeMap<String, u64> {
    fs::flat_keyed(s).map(|(k, v)| (k.to_string(), v)).collect()
}

/// `cpuacct.usage_percpu`: space-separated nanoseconds.
pub(crate) fn parse_percpu(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect()
}
