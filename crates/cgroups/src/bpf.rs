//! The few `bpf(2)` commands the v2 device filter needs: load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, attach it to a cgroup directory,
//! and replace (detach) the programs attached there before.
//!
//! Replacement order matters: the new program is attached first (with
//! `BPF_F_ALLOW_MULTI` all attached programs must allow an access), then
//! the old ones are detached, so the cgroup is never without a filter.
//! An attached program lives as long as the cgroup; no pinning needed.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::devices_bpf::{self, Insn};
use crate::CgroupError;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf_err(op: &'static str, path: &Path, source: io::Error, log: String) -> CgroupError {
    CgroupError::Bpf {
        op,
        path: path.to_path_buf(),
        source,
        log,
    }
}

/// `bpf(cmd, attr, sizeof attr)`.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr points to a live, initialised #[repr(C)] value of the
    // layout the kernel expects for `cmd`, and its exact size is passed;
    // pointers inside it (insns, license, log, prog_ids) are owned by the
    // caller and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A new fd from a non-negative syscall return value.
fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn load(prog: &[Insn], path: &Path) -> Result<OwnedFd, CgroupError> {
    let code = devices_bpf::encode(prog);
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"berth_dev");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            // Load again with the verifier log, only to explain the error.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = sys_bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(bpf_err(
                "load device filter (BPF_PROG_LOAD)",
                path,
                first,
                text,
            ))
        }
    }
}

/// Ids of the device programs attached directly to `cgroup`.
fn query(cgroup: &File, path: &Path) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| {
        bpf_err(
            "query device programs (BPF_PROG_QUERY)",
            path,
            e,
            String::new(),
        )
    })?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn attach_detach(cmd: libc::c_long, cgroup: &File, prog: &OwnedFd, flags: u32) -> io::Result<i64> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        ..Default::default()
    };
    sys_bpf(cmd, &mut attr)
}

/// Load `prog` and make it the only device program of cgroup `dir`.
pub(crate) fn set_device_filter(dir: &Path, prog: &[Insn]) -> Result<(), CgroupError> {
    let cgroup = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| bpf_err("open cgroup directory", dir, e, String::new()))?;
    let old = query(&cgroup, dir)?;
    let new = load(prog, dir)?;
    attach_detach(BPF_PROG_ATTACH, &cgroup, &new, BPF_F_ALLOW_MULTI).map_err(|e| {
        bpf_err(
            "attach device filter (BPF_PROG_ATTACH)",
            dir,
            e,
            String::new(),
        )
    })?;
    for id in old {
        let mut attr = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = match sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => owned(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(bpf_err(
                    "open old device filter (BPF_PROG_GET_FD_BY_ID)",
                    dir,
                    e,
                    String::new(),
                ))
            }
        };
        match attach_detach(BPF_PROG_DETACH, &cgroup, &fd, 0) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(bpf_err(
                    "detach old device filter (BPF_PROG_DETACH)",
                    dir,
                    e,
                    String::new(),
                ))
            }
        }
    }
    Ok(())
}

/// How many device programs are attached directly to cgroup `dir`.
pub(crate) fn device_filter_count(dir: &Path) -> Result<usize, CgroupError> {
    let cgroup = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| bpf_err("open cgroup directory", dir, e, String::new()))?;
    Ok(query(&cgroup, dir)?.len())
}
