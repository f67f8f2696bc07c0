//! Linux capabilities of the container process: parse the five sets of
//! `process.capabilities` into bitmasks, then drop, keep and apply them.
//!
//! Parsing is separate from applying so that a bad name in `config.json`
//! fails before anything is forked, and so the decisions are testable
//! without root. The kernel calls (`prctl`, `capget`/`capset`) are made with
//! raw syscalls: they are few, and no crate we depend on wraps `capset` v3.
//!
//! The caller (container init) follows runc's order:
//! [`drop_bounding`] -> [`set_keep_caps`]`(true)` -> set uid/gid ->
//! [`set_keep_caps`]`(false)` -> [`apply`]. Keeping caps across the uid
//! change is what lets a non-root container user start with the permitted
//! set the config asks for.
//!
//! Semantics copied from runc on purpose:
//! - `process.capabilities` absent means *no* capabilities at all;
//! - a name this runtime does not know is an error, but a name it knows and
//!   the running kernel lacks (above `/proc/sys/kernel/cap_last_cap`) is
//!   skipped, so one config works across kernel versions;
//! - an ambient capability that is not both permitted and inheritable cannot
//!   be raised; runc warns and goes on, so [`apply`] skips it and
//!   [`CapabilitySets::unraisable_ambient`] tells the caller what to warn
//!   about.

use std::sync::OnceLock;

use crate::spec::Capabilities;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("unknown capability {name:?} in process.capabilities.{set}")]
    UnknownName { name: String, set: &'static str },
    #[error("drop capability {cap} from the bounding set: {source}")]
    DropBounding {
        cap: &'static str,
        source: std::io::Error,
    },
    #[error("prctl PR_SET_KEEPCAPS {value}: {source}")]
    KeepCaps { value: u8, source: std::io::Error },
    #[error("capset effective {effective:#x} permitted {permitted:#x} inheritable {inheritable:#x}: {source}")]
    Capset {
        effective: u64,
        permitted: u64,
        inheritable: u64,
        source: std::io::Error,
    },
    #[error("capget: {0}")]
    Capget(std::io::Error),
    #[error("clear the ambient capability set: {0}")]
    ClearAmbient(std::io::Error),
    #[error("raise ambient capability {cap}: {source}")]
    RaiseAmbient {
        cap: &'static str,
        source: std::io::Error,
    },
}

/// Capability names indexed by number, as in `<linux/capability.h>`.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability name such as `"CAP_SYS_ADMIN"`, whether or not
/// the running kernel supports it.
pub fn cap_from_name(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The name of capability `n`, or `"CAP_UNKNOWN"` past the known table.
pub fn cap_name(n: u32) -> &'static str {
    NAMES.get(n as usize).copied().unwrap_or("CAP_UNKNOWN")
}

/// Every capability name this runtime knows (for `features`).
pub fn all_capability_names() -> Vec<&'static str> {
    NAMES.to_vec()
}

/// The highest capability number the running kernel supports: from
/// `/proc/sys/kernel/cap_last_cap`, else probed with `PR_CAPBSET_READ`
/// (which fails with EINVAL past the last one). Cached.
pub fn last_cap() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or_else(probe_last_cap)
    })
}

fn probe_last_cap() -> u32 {
    let mut last = 0;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ only reads this process' bounding set.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } < 0 {
            break;
        }
        last = cap;
    }
    last
}

/// The five capability sets as bitmasks (bit `n` = capability `n`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapabilitySets {
    /// Parse `process.capabilities`; `None` (or an absent set) is empty.
    pub fn from_spec(c: Option<&Capabilities>) -> Result<Self, CapsError> {
        Self::from_spec_for_kernel(c, last_cap())
    }

    /// [`from_spec`](Self::from_spec) for a kernel whose last capability is
    /// `last`: names above it are skipped.
    pub fn from_spec_for_kernel(c: Option<&Capabilities>, last: u32) -> Result<Self, CapsError> {
        let Some(c) = c else {
            return Ok(Self::default());
        };
        let set = |names: &Option<Vec<String>>, set: &'static str| -> Result<u64, CapsError> {
            parse_set(names.as_deref().unwrap_or_default(), set, last)
        };
        Ok(Self {
            bounding: set(&c.bounding, "bounding")?,
            effective: set(&c.effective, "effective")?,
            permitted: set(&c.permitted, "permitted")?,
            inheritable: set(&c.inheritable, "inheritable")?,
            ambient: set(&c.ambient, "ambient")?,
        })
    }

    /// Ambient capabilities the kernel will refuse to raise because they are
    /// not both permitted and inheritable; [`apply`] skips them, as runc
    /// does, and the caller should warn about each.
    pub fn unraisable_ambient(&self) -> Vec<&'static str> {
        names_of(self.ambient & !(self.permitted & self.inheritable))
    }
}

fn parse_set(names: &[String], set: &'static str, last: u32) -> Result<u64, CapsError> {
    let mut mask = 0u64;
    for name in names {
        let cap = cap_from_name(name).ok_or_else(|| CapsError::UnknownName {
            name: name.clone(),
            set,
        })?;
        if cap <= last {
            mask |= 1 << cap;
        }
    }
    Ok(mask)
}

/// The names of the capabilities set in `mask`, in number order.
pub fn names_of(mask: u64) -> Vec<&'static str> {
    (0..64u32)
        .filter(|c| mask & (1 << c) != 0)
        .map(cap_name)
        .collect()
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: the prctl options used here (PR_CAPBSET_DROP, PR_SET_KEEPCAPS,
    // PR_CAP_AMBIENT) take integer arguments only and touch no memory.
    if unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Drop every capability the kernel supports that is not in `sets.bounding`
/// from the bounding set (needs CAP_SETPCAP).
pub fn drop_bounding(sets: &CapabilitySets) -> Result<(), CapsError> {
    for cap in 0..=last_cap() {
        if sets.bounding & (1 << cap) == 0 {
            prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0).map_err(|source| {
                CapsError::DropBounding {
                    cap: cap_name(cap),
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// `PR_SET_KEEPCAPS`: keep the permitted set across the change away from
/// uid 0 (on), or restore the default (off).
pub fn set_keep_caps(on: bool) -> Result<(), CapsError> {
    let value = u8::from(on);
    prctl(libc::PR_SET_KEEPCAPS, value.into(), 0)
        .map_err(|source| CapsError::KeepCaps { value, source })
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's (effective, permitted, inheritable) sets.
pub fn current() -> Result<(u64, u64, u64), CapsError> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid for the v3 layout (two CapData).
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc < 0 {
        return Err(CapsError::Capget(std::io::Error::last_os_error()));
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), CapsError> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |m: u64| (m as u32, (m >> 32) as u32);
    let (e0, e1) = split(effective);
    let (p0, p1) = split(permitted);
    let (i0, i1) = split(inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: header and data are valid for the v3 layout; capset only reads
    // data.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc < 0 {
        return Err(CapsError::Capset {
            effective,
            permitted,
            inheritable,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Set the effective, permitted and inheritable sets, then replace the
/// ambient set with `sets.ambient` (minus the unraisable ones, see
/// [`CapabilitySets::unraisable_ambient`]).
pub fn apply(sets: &CapabilitySets) -> Result<(), CapsError> {
    capset(sets.effective, sets.permitted, sets.inheritable)?;
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map_err(CapsError::ClearAmbient)?;
    let raisable = sets.ambient & sets.permitted & sets.inheritable;
    for cap in 0..64u32 {
        if raisable & (1 << cap) != 0 {
            prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
            )
            .map_err(|source| CapsError::RaiseAmbient {
                cap: cap_name(cap),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::test_child::in_child;

    fn caps(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(cap_from_name("CAP_CHOWN"), Some(0));
        assert_eq!(cap_from_name("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_from_name("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_from_name("sys_admin"), None);
        for (i, n) in all_capability_names().iter().enumerate() {
            assert_eq!(cap_name(i as u32), *n);
        }
        assert_eq!(cap_name(63), "CAP_UNKNOWN");
    }

    #[test]
    fn absent_capabilities_mean_none() {
        let sets = CapabilitySets::from_spec(None).expect("None parses");
        assert_eq!(sets, CapabilitySets::default());
    }

    #[test]
    fn sets_are_parsed_into_their_own_masks() {
        let c = Capabilities {
            bounding: caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            effective: caps(&["CAP_KILL"]),
            permitted: caps(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            inheritable: None,
            ambient: caps(&["CAP_NET_BIND_SERVICE"]),
        };
        let sets = CapabilitySets::from_spec_for_kernel(Some(&c), 40).expect("known names");
        assert_eq!(sets.bounding, 1 | 1 << 5 | 1 << 10);
        assert_eq!(sets.effective, 1 << 5);
        assert_eq!(sets.permitted, 1 << 5 | 1 << 10);
        assert_eq!(sets.inheritable, 0);
        assert_eq!(sets.ambient, 1 << 10);
        assert_eq!(sets.unraisable_ambient(), vec!["CAP_NET_BIND_SERVICE"]);
    }

    #[test]
    fn unknown_name_is_an_error_naming_it_and_the_set() {
        let c = Capabilities {
            permitted: caps(&["CAP_CHOWN", "CAP_FOO"]),
            ..Default::default()
        };
        let err = CapabilitySets::from_spec(Some(&c)).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown capability \"CAP_FOO\" in process.capabilities.permitted"
        );
    }

    #[test]
    fn names_the_kernel_lacks_are_skipped() {
        let c = Capabilities {
            bounding: caps(&["CAP_CHOWN", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]),
            ..Default::default()
        };
        let sets = CapabilitySets::from_spec_for_kernel(Some(&c), 37).expect("skips");
        assert_eq!(
            sets.bounding, 1,
            "only CAP_CHOWN exists on a cap_last_cap=37 kernel"
        );
    }

    fn status_mask(field: &str) -> Result<u64, String> {
        let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .ok_or(format!("no {field} in /proc/self/status"))?;
        let hex = line[field.len()..].trim();
        u64::from_str_radix(hex, 16).map_err(|e| format!("{line}: {e}"))
    }

    fn expect_mask(field: &str, want: u64) -> Result<(), String> {
        let got = status_mask(field)?;
        if got != want {
            return Err(format!("{field} expected {want:#x}, got {got:#x}"));
        }
        Ok(())
    }

    #[test]
    fn drop_and_apply_as_root_shows_in_proc_status() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let c = Capabilities {
            bounding: caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            effective: caps(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]),
            permitted: caps(&["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]),
            inheritable: caps(&["CAP_NET_BIND_SERVICE"]),
            ambient: caps(&["CAP_NET_BIND_SERVICE"]),
        };
        let sets = CapabilitySets::from_spec(Some(&c)).expect("parse");
        in_child(|| {
            drop_bounding(&sets).map_err(|e| e.to_string())?;
            apply(&sets).map_err(|e| e.to_string())?;
            expect_mask("CapBnd:", 1 | 1 << 5 | 1 << 10)?;
            expect_mask("CapEff:", 1 | 1 << 10)?;
            expect_mask("CapPrm:", 1 | 1 << 10)?;
            expect_mask("CapInh:", 1 << 10)?;
            expect_mask("CapAmb:", 1 << 10)
        })
        .expect("child");
    }

    #[test]
    fn keep_caps_carries_permitted_set_to_a_non_root_user() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let c = Capabilities {
            bounding: caps(&["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]),
            effective: caps(&["CAP_CHOWN"]),
            permitted: caps(&["CAP_CHOWN"]),
            ..Default::default()
        };
        let sets = CapabilitySets::from_spec(Some(&c)).expect("parse");
        let user = crate::spec::User {
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        in_child(|| {
            drop_bounding(&sets).map_err(|e| e.to_string())?;
            set_keep_caps(true).map_err(|e| e.to_string())?;
            crate::process::set_identity(&user).map_err(|e| e.to_string())?;
            set_keep_caps(false).map_err(|e| e.to_string())?;
            apply(&sets).map_err(|e| e.to_string())?;
            if nix::unistd::getuid().as_raw() != 1000 {
                return Err("uid is not 1000".into());
            }
            expect_mask("CapEff:", 1)?;
            expect_mask("CapPrm:", 1)?;
            expect_mask("CapBnd:", 1 | 1 << 6 | 1 << 7)
        })
        .expect("child");
    }
}
