//! Resource limits as the OCI runtime spec's `linux.resources` object.
//!
//! Field names and JSON spellings follow the spec exactly (`kernelTCP`,
//! `disableOOMKiller`, `classID`, `throttleReadIOPSDevice`, ...). Every field
//! is optional, missing objects default, unknown fields are ignored, so any
//! valid `config.json` fragment deserializes. Validation of values happens
//! where they are turned into cgroup file contents (the drivers), because
//! what is valid depends on the cgroup version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `linux.resources`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxResources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<LinuxDeviceCgroup>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<LinuxMemory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<LinuxCpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<LinuxPids>,
    #[serde(rename = "blockIO", skip_serializing_if = "Option::is_none")]
    pub block_io: Option<LinuxBlockIo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hugepage_limits: Option<Vec<LinuxHugepageLimit>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<LinuxNetwork>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdma: Option<BTreeMap<String, LinuxRdma>>,
    /// Raw cgroup v2 files: file name -> value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified: Option<BTreeMap<String, String>>,
}

/// One entry of `linux.resources.devices`. Entries are applied in order;
/// the effective policy starts from "deny all".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxDeviceCgroup {
    pub allow: bool,
    /// "a" (all), "c" (char) or "b" (block); missing means "a".
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Missing means all majors ("*").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// Missing means all minors ("*").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Some of "rwm"; missing means "rwm".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxMemory {
    /// Bytes; -1 is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    /// Memory plus swap (cgroup v1 `memsw` semantics); -1 is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
    /// Deprecated by the kernel; see the driver notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<i64>,
    #[serde(rename = "kernelTCP", skip_serializing_if = "Option::is_none")]
    pub kernel_tcp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller", skip_serializing_if = "Option::is_none")]
    pub disable_oom_killer: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_hierarchy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_before_update: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxCpu {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    /// Microseconds per period; -1 is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_runtime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mems: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxPids {
    /// 0 or negative means no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxBlockIo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_device: Option<Vec<LinuxWeightDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_read_bps_device: Option<Vec<LinuxThrottleDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_write_bps_device: Option<Vec<LinuxThrottleDevice>>,
    #[serde(
        rename = "throttleReadIOPSDevice",
        skip_serializing_if = "Option::is_none"
    )]
    pub throttle_read_iops_device: Option<Vec<LinuxThrottleDevice>>,
    #[serde(
        rename = "throttleWriteIOPSDevice",
        skip_serializing_if = "Option::is_none"
    )]
    pub throttle_write_iops_device: Option<Vec<LinuxThrottleDevice>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxWeightDevice {
    pub major: i64,
    pub minor: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxHugepageLimit {
    /// e.g. "2MB", "1GB" (the spelling used in the hugetlb file names).
    pub page_size: String,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxNetwork {
    #[serde(rename = "classID", skip_serializing_if = "Option::is_none")]
    pub class_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priorities: Option<Vec<LinuxInterfacePriority>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxInterfacePriority {
    pub name: String,
    pub priority: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxRdma {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hca_handles: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hca_objects: Option<u32>,
}

// ---- conversions shared by both drivers -------------------------------

/// cgroup v2 `cpu.weight` from v1-style `cpu.shares` (runc's formula:
/// shares 2..=262144 map linearly onto weight 1..=10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// cgroup v2 `io.weight` from blkio weight 10..=1000 (runc's formula).
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w).clamp(10, 1000);
    1 + (w - 10) * 9999 / 990
}

/// A device rule as the v1 devices controller spells it: "c 1:3 rwm".
pub(crate) fn device_rule(d: &LinuxDeviceCgroup) -> Result<String, crate::CgroupError> {
    let typ = d.typ.as_deref().unwrap_or("a");
    if !matches!(typ, "a" | "b" | "c") {
        return Err(crate::CgroupError::invalid(
            "devices.type",
            format!("{typ:?} is not one of \"a\", \"b\", \"c\""),
        ));
    }
    let access = d.access.as_deref().unwrap_or("rwm");
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(crate::CgroupError::invalid(
            "devices.access",
            format!("{access:?} is not a non-empty subset of \"rwm\""),
        ));
    }
    let num = |n: Option<i64>, what: &str| -> Result<String, crate::CgroupError> {
        match n {
            None | Some(-1) => Ok("*".to_string()),
            Some(v) if v >= 0 => Ok(v.to_string()),
            Some(v) => Err(crate::CgroupError::invalid(
                format!("devices.{what}"),
                format!("{v} is negative"),
            )),
        }
    };
    Ok(format!(
        "{typ} {}:{} {access}",
        num(d.major, "major")?,
        num(d.minor, "minor")?
    ))
}

/// Validate a hugepage size before it becomes part of a file name.
pub(crate) fn check_page_size(s: &str) -> Result<(), crate::CgroupError> {
    let ok = s.len() >= 3
        && s.ends_with('B')
        && s[..s.len() - 2].chars().all(|c| c.is_ascii_digit())
        && !s[..s.len() - 2].is_empty()
        && matches!(&s[s.len() - 2..s.len() - 1], "K" | "M" | "G");
    if ok {
        Ok(())
    } else {
        Err(crate::CgroupError::invalid(
            "hugepageLimits.pageSize",
            format!("{s:?} is not like \"2MB\" or \"1GB\""),
        ))
    }
}

/// Validate a file name from `unified` before it is joined to a path.
pub(crate) fn check_unified_key(k: &str) -> Result<(), crate::CgroupError> {
    if k.is_empty() || k.contains('/') || k == "." || k == ".." || k.contains('\0') {
        return Err(crate::CgroupError::invalid(
            "unified",
            format!("{k:?} is not a plain cgroup file name"),
        ));
    }
    Ok(())
}

/// v1 `cpu.shares` range (the kernel clamps silently; we refuse instead).
pub(crate) fn check_shares(s: u64) -> Result<(), crate::CgroupError> {
    if (2..=262_144).contains(&s) {
        Ok(())
    } else {
        Err(crate::CgroupError::invalid(
            "cpu.shares",
            format!("{s} is outside 2..=262144"),
        ))
    }
}

/// blkio weights (`blockIO.weight`, `leafWeight`, per-device): 10..=1000.
pub(crate) fn check_blkio_weight(field: &str, w: u16) -> Result<(), crate::CgroupError> {
    if (10..=1000).contains(&w) {
        Ok(())
    } else {
        Err(crate::CgroupError::invalid(
            field,
            format!("{w} is outside 10..=1000"),
        ))
    }
}

/// Validate every blkio weight of `b` before anything is written.
pub(crate) fn check_blkio_weights(b: &LinuxBlockIo) -> Result<(), crate::CgroupError> {
    if let Some(w) = b.weight {
        check_blkio_weight("blockIO.weight", w)?;
    }
    if let Some(w) = b.leaf_weight {
        check_blkio_weight("blockIO.leafWeight", w)?;
    }
    for wd in b.weight_device.iter().flatten() {
        if let Some(w) = wd.weight {
            check_blkio_weight("blockIO.weightDevice.weight", w)?;
        }
        if let Some(w) = wd.leaf_weight {
            check_blkio_weight("blockIO.weightDevice.leafWeight", w)?;
        }
    }
    Ok(())
}
