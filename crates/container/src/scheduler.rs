//! `process.scheduler`: the scheduling policy of the container's process,
//! set with `sched_setattr(2)` (libc has no wrapper; the struct is the
//! kernel's `sched_attr`, version 1 with utilisation clamps zeroed).

use crate::error::{ContainerError, Result};
use crate::spec::Scheduler;

#[repr(C)]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

const SCHED_DEADLINE: u32 = 6;

fn invalid(message: String) -> ContainerError {
    ContainerError::Invalid(format!("process.scheduler: {message}"))
}

/// The kernel's `sched_attr` for a spec entry; every name is checked.
pub fn sched_attr(s: &Scheduler) -> Result<SchedAttr> {
    let policy = match s.policy.as_str() {
        "SCHED_OTHER" => libc::SCHED_OTHER as u32,
        "SCHED_FIFO" => libc::SCHED_FIFO as u32,
        "SCHED_RR" => libc::SCHED_RR as u32,
        "SCHED_BATCH" => libc::SCHED_BATCH as u32,
        "SCHED_ISO" => 4,
        "SCHED_IDLE" => libc::SCHED_IDLE as u32,
        "SCHED_DEADLINE" => SCHED_DEADLINE,
        other => return Err(invalid(format!("unknown policy {other:?}"))),
    };
    let mut flags = 0u64;
    for f in &s.flags {
        flags |= match f.as_str() {
            "SCHED_FLAG_RESET_ON_FORK" => 0x01,
            "SCHED_FLAG_RECLAIM" => 0x02,
            "SCHED_FLAG_DL_OVERRUN" => 0x04,
            "SCHED_FLAG_KEEP_POLICY" => 0x08,
            "SCHED_FLAG_KEEP_PARAMS" => 0x10,
            "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
            "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
            other => return Err(invalid(format!("unknown flag {other:?}"))),
        };
    }
    if !(-20..=19).contains(&s.nice) {
        return Err(invalid(format!("nice {} is outside -20..19", s.nice)));
    }
    let priority = u32::try_from(s.priority)
        .map_err(|_| invalid(format!("negative priority {}", s.priority)))?;
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice,
        priority,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
        util_min: 0,
        util_max: 0,
    })
}

/// Applies the policy to the calling process.
pub fn apply(s: &Scheduler) -> Result<()> {
    let attr = sched_attr(s)?;
    // SAFETY: sched_setattr reads `attr`, a live sched_attr whose `size`
    // field holds its size; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(ContainerError::Sys {
            op: "sched_setattr (process.scheduler)",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_values() {
        let attr = sched_attr(&Scheduler {
            policy: "SCHED_BATCH".into(),
            nice: 5,
            flags: vec!["SCHED_FLAG_RESET_ON_FORK".into()],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(attr.policy, libc::SCHED_BATCH as u32);
        assert_eq!(attr.flags, 1);
        assert_eq!(attr.nice, 5);
        assert_eq!(attr.size, 56);
    }

    #[test]
    fn unknown_policy_and_bad_nice_are_refused() {
        let bad = |p: &str, nice| {
            sched_attr(&Scheduler {
                policy: p.into(),
                nice,
                ..Default::default()
            })
            .expect_err("must refuse")
            .to_string()
        };
        assert!(bad("SCHED_NOPE", 0).contains("SCHED_NOPE"));
        assert!(bad("SCHED_OTHER", 40).contains("nice 40"));
    }

    #[test]
    fn batch_policy_applies_in_a_child() {
        // SAFETY: fork in a test; the child only makes syscalls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let ok = apply(&Scheduler {
                policy: "SCHED_BATCH".into(),
                ..Default::default()
            })
            .is_ok()
                // SAFETY: query of the calling process.
                && unsafe { libc::sched_getscheduler(0) } == libc::SCHED_BATCH;
            // SAFETY: leave the forked child without running test harness code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child into a local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0, "child saw SCHED_BATCH");
    }
}
