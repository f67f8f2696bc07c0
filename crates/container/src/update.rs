//! `update` and `events`: change a live container's resources, and watch
//! its resource usage and OOM kills.
//!
//! `update` applies only the fields it is given (a flag or a field of the
//! `-r` JSON), then merges them into the stored config (`state.json`
//! `config.linux.resources`) so that later `update`s and `events` see the
//! container's real limits. Values are validated at this border: memory
//! sizes with runc's suffixes, weights and shares in range.
//!
//! `events` prints JSON in runc's shape (`types/events.go`): `--stats` one
//! stats event; otherwise a stats event every interval plus an `oom` event
//! whenever the cgroup's OOM-kill counter rises, until the container stops.
//! The counter (v1 `memory.oom_control`, v2 `memory.events`) is polled
//! every 100 ms rather than watched with an eventfd or inotify: one small
//! read, the same code on both drivers, and an OOM kill is never missed
//! because the counter only grows.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use cgroups::{Cgroup, LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, Stats};
use serde::Serialize;

use crate::error::{ContainerError, Result};
use crate::lifecycle;
use crate::state::{self, Status};
use crate::Runtime;

/// How often `events` checks the OOM counter and whether the container
/// still runs.
const POLL: Duration = Duration::from_millis(100);

/// runc's `update` flags, as typed on the command line (validated by
/// [`flags_to_resources`]). `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct UpdateFlags {
    pub blkio_weight: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<i64>,
    pub cpu_rt_period: Option<i64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
}

fn invalid(what: &str, value: impl std::fmt::Display, why: &str) -> ContainerError {
    ContainerError::Invalid(format!("invalid {what} \"{value}\": {why}"))
}

/// A memory size as runc's `update` takes it: bytes, or a number with a
/// binary suffix `k`, `m`, `g`, `t`, `p` (optionally followed by `b` or
/// `ib`, any case): "64m" = 64 MiB; "-1" = unlimited.
pub fn parse_memory(what: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, suffix) = lower.split_at(digits_end);
    let shift = match suffix.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => {
            return Err(invalid(
                what,
                s,
                "expected bytes or a size like 64m, 1g (or -1 for unlimited)",
            ))
        }
    };
    let n: i64 = num
        .parse()
        .map_err(|_| invalid(what, s, "expected a non-negative size or -1"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| invalid(what, s, "too large"))
}

fn non_negative(what: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| invalid(what, v, "must not be negative"))
}

/// The resources the flags ask for; only given flags are set.
pub fn flags_to_resources(f: &UpdateFlags) -> Result<LinuxResources> {
    if let Some(v) = f.l3_cache_schema.as_ref().or(f.mem_bw_schema.as_ref()) {
        return Err(invalid(
            "--l3-cache-schema/--mem-bw-schema",
            v,
            "Intel RDT is not supported by berth-runtime",
        ));
    }
    let mut r = LinuxResources::default();
    if let Some(w) = f.blkio_weight {
        let w16 = u16::try_from(w)
            .ok()
            .filter(|w| (10..=1000).contains(w))
            .ok_or_else(|| invalid("--blkio-weight", w, "must be within 10..=1000"))?;
        r.block_io = Some(LinuxBlockIo {
            weight: Some(w16),
            ..Default::default()
        });
    }
    let cpu = LinuxCpu {
        period: f
            .cpu_period
            .map(|v| non_negative("--cpu-period", v))
            .transpose()?,
        quota: f.cpu_quota,
        shares: f
            .cpu_share
            .map(|v| non_negative("--cpu-share", v))
            .transpose()?,
        realtime_period: f
            .cpu_rt_period
            .map(|v| non_negative("--cpu-rt-period", v))
            .transpose()?,
        realtime_runtime: f.cpu_rt_runtime,
        cpus: f.cpuset_cpus.clone(),
        mems: f.cpuset_mems.clone(),
        ..Default::default()
    };
    if cpu != LinuxCpu::default() {
        r.cpu = Some(cpu);
    }
    let mem = |what: &str, v: &Option<String>| v.as_deref().map(|s| parse_memory(what, s));
    let memory = LinuxMemory {
        limit: mem("--memory", &f.memory).transpose()?,
        reservation: mem("--memory-reservation", &f.memory_reservation).transpose()?,
        swap: mem("--memory-swap", &f.memory_swap).transpose()?,
        ..Default::default()
    };
    if memory != LinuxMemory::default() {
        r.memory = Some(memory);
    }
    if let Some(l) = f.pids_limit {
        r.pids = Some(LinuxPids { limit: Some(l) });
    }
    Ok(r)
}

/// Read `-r FILE` (`-` = stdin): a JSON `linux.resources` object.
pub fn read_resources(path: &Path) -> Result<LinuxResources> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| ContainerError::Sys {
                op: "read resources from stdin",
                source: e,
            })?;
    } else {
        text = std::fs::read_to_string(path).map_err(crate::error::io_err("read", path))?;
    }
    serde_json::from_str(&text).map_err(|e| {
        ContainerError::Invalid(format!(
            "parse resources {}: {e} (expected a JSON linux.resources object)",
            path.display()
        ))
    })
}

/// Copy the `Some` fields of each listed field from `$src` into `$dst`.
macro_rules! overlay {
    ($dst:expr, $src:expr, $($f:ident),+) => {
        $( if $src.$f.is_some() { $dst.$f = $src.$f.clone(); } )+
    };
}

/// Merge `new` into `stored`: per field for memory, cpu, pids and blockIO;
/// whole lists/maps for the rest.
pub fn merge_resources(stored: &mut LinuxResources, new: &LinuxResources) {
    if let Some(m) = &new.memory {
        let d = stored.memory.get_or_insert_with(Default::default);
        overlay!(
            d,
            m,
            limit,
            reservation,
            swap,
            kernel,
            kernel_tcp,
            swappiness
        );
        overlay!(d, m, disable_oom_killer, use_hierarchy, check_before_update);
    }
    if let Some(c) = &new.cpu {
        let d = stored.cpu.get_or_insert_with(Default::default);
        overlay!(d, c, shares, quota, burst, period, realtime_runtime);
        overlay!(d, c, realtime_period, cpus, mems, idle);
    }
    if let Some(p) = &new.pids {
        let d = stored.pids.get_or_insert_with(Default::default);
        overlay!(d, p, limit);
    }
    if let Some(b) = &new.block_io {
        let d = stored.block_io.get_or_insert_with(Default::default);
        overlay!(
            d,
            b,
            weight,
            leaf_weight,
            weight_device,
            throttle_read_bps_device
        );
        overlay!(d, b, throttle_write_bps_device, throttle_read_iops_device);
        overlay!(d, b, throttle_write_iops_device);
    }
    overlay!(
        stored,
        new,
        devices,
        hugepage_limits,
        network,
        rdma,
        unified
    );
}

/// `update ID`: apply `r` to the live container and store the merge.
/// Device rules, when given, replace the stored ones and are applied
/// together with the runtime's defaults, exactly as at create.
pub fn update(rt: &Runtime, id: &str, r: &LinuxResources) -> Result<()> {
    let (dir, mut st, status) = lifecycle::load(rt, id)?;
    if status == Status::Stopped {
        return Err(ContainerError::Invalid(format!(
            "cannot update container {id}: it has stopped"
        )));
    }
    let mut merged = st.config.linux().resources.clone().unwrap_or_default();
    merge_resources(&mut merged, r);
    st.config
        .linux
        .get_or_insert_with(Default::default)
        .resources = Some(merged);
    let mut apply = r.clone();
    if r.devices.is_some() {
        apply.devices = crate::create::effective_resources(&st.config).devices;
    }
    crate::lifecycle::needs_cgroup(&st, "update")?.apply(&apply)?;
    dir.save(&st)?;
    Ok(())
}

// ---- events ------------------------------------------------------------

/// One line of `events` output: `{"type":"stats"|"oom","id":..,"data":..}`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<RuncStats>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// runc's `types.Stats` (the parts berth fills); zero numbers are omitted
/// where runc's `omitempty` omits them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncStats {
    pub cpu: RuncCpu,
    pub memory: RuncMemory,
    pub pids: RuncPids,
    pub blkio: RuncBlkio,
    pub hugetlb: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncCpu {
    pub usage: RuncCpuUsage,
    pub throttling: RuncThrottling,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncCpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuncThrottling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncMemoryEntry {
    /// u64::MAX when unlimited.
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncMemory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: RuncMemoryEntry,
    pub swap: RuncMemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncPids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuncBlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuncBlkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<RuncBlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<RuncBlkioEntry>,
}

/// Convert the cgroup layer's stats into runc's event shape.
pub fn runc_stats(s: &Stats) -> RuncStats {
    let blk = |l: &[cgroups::BlkioEntry]| {
        l.iter()
            .map(|e| RuncBlkioEntry {
                major: e.major,
                minor: e.minor,
                op: e.op.clone(),
                value: e.value,
            })
            .collect()
    };
    let m = &s.memory;
    RuncStats {
        cpu: RuncCpu {
            usage: RuncCpuUsage {
                total: s.cpu.usage_total_ns.unwrap_or(0),
                percpu: s.cpu.percpu_ns.clone(),
                kernel: s.cpu.usage_system_ns.unwrap_or(0),
                user: s.cpu.usage_user_ns.unwrap_or(0),
            },
            throttling: RuncThrottling {
                periods: s.cpu.nr_periods.unwrap_or(0),
                throttled_periods: s.cpu.nr_throttled.unwrap_or(0),
                throttled_time: s.cpu.throttled_time_ns.unwrap_or(0),
            },
        },
        memory: RuncMemory {
            cache: m.cache_bytes.unwrap_or(0),
            usage: RuncMemoryEntry {
                limit: m.limit_bytes.unwrap_or(u64::MAX),
                usage: m.usage_bytes.unwrap_or(0),
                max: m.max_usage_bytes.unwrap_or(0),
                failcnt: m.failcnt.unwrap_or(0),
            },
            swap: RuncMemoryEntry {
                limit: m.swap_limit_bytes.unwrap_or(u64::MAX),
                usage: m.swap_usage_bytes.unwrap_or(0),
                max: 0,
                failcnt: 0,
            },
            raw: m.raw.clone(),
        },
        pids: RuncPids {
            current: s.pids.current.unwrap_or(0),
            limit: s.pids.limit.unwrap_or(0),
        },
        blkio: RuncBlkio {
            io_service_bytes_recursive: blk(&s.blkio.io_service_bytes),
            io_serviced_recursive: blk(&s.blkio.io_serviced),
        },
        hugetlb: BTreeMap::new(),
    }
}

/// The container's cgroup and its init (pid, start time), if it runs.
fn running_cgroup(rt: &Runtime, id: &str) -> Result<(Cgroup, i32, u64)> {
    let (_dir, st, status) = lifecycle::load(rt, id)?;
    if status == Status::Stopped {
        return Err(ContainerError::Invalid(format!(
            "container {id} is not running"
        )));
    }
    let cg = crate::lifecycle::needs_cgroup(&st, "read events of")?;
    Ok((cg, st.pid, st.init_start_time))
}

fn stats_of(cg: &Cgroup, id: &str) -> Result<Event> {
    Ok(Event {
        kind: "stats".into(),
        id: id.to_string(),
        data: Some(runc_stats(&cg.stats()?)),
    })
}

/// `events --stats ID`: one stats event.
pub fn stats_event(rt: &Runtime, id: &str) -> Result<Event> {
    let (cg, _, _) = running_cgroup(rt, id)?;
    stats_of(&cg, id)
}

/// `events ID`: call `emit` with a stats event every `interval` and an
/// `oom` event whenever the OOM-kill count rises, until the container
/// stops (then `Ok`). The state lock is not held while watching.
pub fn watch_events(
    rt: &Runtime,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(&Event) -> Result<()>,
) -> Result<()> {
    if interval.is_zero() {
        return Err(invalid("--interval", "0s", "must be positive"));
    }
    let (cg, pid, start) = running_cgroup(rt, id)?;
    let mut ooms = cg.oom_kill_count()?.unwrap_or(0);
    let mut next_stats = Instant::now() + interval;
    loop {
        let now = Instant::now();
        std::thread::sleep(POLL.min(next_stats.saturating_duration_since(now)));
        let alive = state::process_matches(pid, start);
        // A deleted container takes its cgroup with it: that ends the watch.
        let Ok(count) = cg.oom_kill_count() else {
            return Ok(());
        };
        let count = count.unwrap_or(0);
        if count > ooms {
            ooms = count;
            emit(&Event {
                kind: "oom".into(),
                id: id.to_string(),
                data: None,
            })?;
        }
        if !alive {
            return Ok(());
        }
        if Instant::now() >= next_stats {
            next_stats += interval;
            match stats_of(&cg, id) {
                Ok(ev) => emit(&ev)?,
                Err(_) if !cg.exists() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// runc's `--interval` syntax (Go durations): "5s", "500ms", "1m", "2h",
/// or a combination like "1m30s".
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || invalid("--interval", s, "expected a duration like 5s, 500ms or 1m");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..end].parse().map_err(|_| bad())?;
        let unit_end = rest[end..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| end + i);
        let secs = match &rest[end..unit_end] {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_use_runc_suffixes() {
        for (s, want) in [
            ("100", 100),
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("1g", 1 << 30),
            ("512k", 512 << 10),
            ("2MiB", 2 << 20),
            ("3mb", 3 << 20),
            ("-1", -1),
        ] {
            assert_eq!(parse_memory("--memory", s).unwrap(), want, "{s}");
        }
        for bad in ["", "m", "-5", "12x", "1.5g", "99999999999999999999"] {
            let e = parse_memory("--memory", bad).unwrap_err().to_string();
            assert!(e.contains("--memory") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_set_only_what_was_given() {
        let r = flags_to_resources(&UpdateFlags {
            memory: Some("100m".into()),
            pids_limit: Some(30),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"memory": {"limit": 104857600}, "pids": {"limit": 30}})
        );
        let r = flags_to_resources(&UpdateFlags {
            cpu_quota: Some(10000),
            cpu_period: Some(100000),
            cpuset_cpus: Some("0".into()),
            blkio_weight: Some(500),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"cpu": {"quota": 10000, "period": 100000, "cpus": "0"},
                "blockIO": {"weight": 500}})
        );
    }

    #[test]
    fn bad_flags_name_the_flag_and_value() {
        for (f, needle) in [
            (
                UpdateFlags {
                    blkio_weight: Some(0),
                    ..Default::default()
                },
                "--blkio-weight \"0\"",
            ),
            (
                UpdateFlags {
                    blkio_weight: Some(-3),
                    ..Default::default()
                },
                "--blkio-weight \"-3\"",
            ),
            (
                UpdateFlags {
                    cpu_share: Some(-1),
                    ..Default::default()
                },
                "--cpu-share \"-1\"",
            ),
            (
                UpdateFlags {
                    l3_cache_schema: Some("L3:0=f".into()),
                    ..Default::default()
                },
                "not supported",
            ),
        ] {
            let e = flags_to_resources(&f).unwrap_err().to_string();
            assert!(e.contains(needle), "expected {needle:?} in {e:?}");
        }
    }

    #[test]
    fn merge_overlays_fields() {
        let mut stored: LinuxResources = serde_json::from_str(
            r#"{"memory": {"limit": 1, "swap": 2}, "cpu": {"shares": 512},
                "devices": [{"allow": false, "access": "rwm"}]}"#,
        )
        .unwrap();
        let new: LinuxResources =
            serde_json::from_str(r#"{"memory": {"limit": 5}, "pids": {"limit": 9}}"#).unwrap();
        merge_resources(&mut stored, &new);
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            serde_json::json!({"memory": {"limit": 5, "swap": 2}, "cpu": {"shares": 512},
                "pids": {"limit": 9}, "devices": [{"allow": false, "access": "rwm"}]})
        );
    }

    #[test]
    fn stats_have_runc_shape() {
        let mut s = Stats::default();
        s.cpu.usage_total_ns = Some(10);
        s.cpu.nr_periods = Some(4);
        s.cpu.nr_throttled = Some(3);
        s.memory.usage_bytes = Some(4096);
        s.memory.limit_bytes = Some(8192);
        s.pids.current = Some(2);
        s.pids.limit = Some(20);
        let ev = Event {
            kind: "stats".into(),
            id: "c".into(),
            data: Some(runc_stats(&s)),
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["data"]["cpu"]["usage"]["total"], 10);
        assert_eq!(v["data"]["cpu"]["usage"]["kernel"], 0);
        assert_eq!(v["data"]["cpu"]["throttling"]["throttledPeriods"], 3);
        assert!(v["data"]["cpu"]["throttling"]
            .get("throttledTime")
            .is_none());
        assert_eq!(v["data"]["memory"]["usage"]["usage"], 4096);
        assert_eq!(v["data"]["memory"]["usage"]["limit"], 8192);
        assert_eq!(v["data"]["memory"]["swap"]["limit"], u64::MAX);
        assert_eq!(
            v["data"]["pids"],
            serde_json::json!({"current": 2, "limit": 20})
        );
        let oom = Event {
            kind: "oom".into(),
            id: "c".into(),
            data: None,
        };
        assert_eq!(
            serde_json::to_string(&oom).unwrap(),
            r#"{"type":"oom","id":"c"}"#
        );
    }

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("1m30s").unwrap(), Duration::from_secs(90));
        for bad in ["", "5", "s", "5x", "-1s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
    }
}
