//! After pivot_root: what narrows the container's view of the kernel.
//!
//! `/` is now the rootfs, but its content is still the image's: masked and
//! readonly paths are resolved with `RESOLVE_IN_ROOT` from `/` and mounted
//! onto through their fd, and sysctl keys are checked and opened beneath
//! /proc/sys without following any symlink.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statvfs::{fstatvfs, statvfs};

use super::options::{parse_options, propagation_flag};
use super::safe_path::{open_in_root, proc_fd};
use super::{mount_flags_of, open_dir, sys_err, RootfsError};
use crate::spec::Spec;

pub(crate) fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux();
    if let Some(flag) = linux
        .rootfs_propagation
        .as_deref()
        .and_then(propagation_flag)
    {
        mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
            .map_err(sys_err("linux.rootfsPropagation on /", "mount"))?;
    }
    for (key, value) in &linux.sysctl {
        write_sysctl(key, value)?;
    }
    let root = open_dir(Path::new("/"), OFlag::O_PATH).map_err(sys_err("/", "open"))?;
    for (i, p) in linux.readonly_paths.iter().enumerate() {
        readonly_path(
            root.as_fd(),
            &format!("linux.readonlyPaths[{i}] {}", p.display()),
            p,
        )?;
    }
    for (i, p) in linux.masked_paths.iter().enumerate() {
        mask_path(
            root.as_fd(),
            &format!("linux.maskedPaths[{i}] {}", p.display()),
            p,
        )?;
    }
    let dev_ro = spec.mounts.iter().any(|m| {
        m.destination == Path::new("/dev")
            && parse_options(&m.options).flags.contains(MsFlags::MS_RDONLY)
    });
    if dev_ro {
        remount_ro(Path::new("/dev"), "read-only /dev")?;
    }
    if spec.root.as_ref().is_some_and(|r| r.readonly) {
        remount_ro(Path::new("/"), "root.readonly")?;
    }
    Ok(())
}

/// `/proc/sys/...` for a sysctl key: dots become slashes; a key that is
/// empty, absolute, or has an empty, `.` or `..` component is refused.
pub(crate) fn sysctl_path(key: &str) -> Result<PathBuf, RootfsError> {
    let bad = |reason: &str| RootfsError::InvalidSysctl {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    if key.starts_with('/') {
        return Err(bad("absolute path"));
    }
    if key.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let rel = key.replace('.', "/");
    if rel.split('/').any(str::is_empty) {
        return Err(bad("empty or '.'/'..' component"));
    }
    let path = Path::new(&rel);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("component escapes /proc/sys"));
    }
    Ok(PathBuf::from(rel))
}

fn write_sysctl(key: &str, value: &str) -> Result<(), RootfsError> {
    let rel = sysctl_path(key)?;
    let what = format!("linux.sysctl {key}");
    let proc_sys = open_dir(Path::new("/proc/sys"), OFlag::O_PATH)
        .map_err(sys_err(&what, "open /proc/sys"))?;
    let resolve = sys::RESOLVE_BENEATH
        | sys::RESOLVE_NO_SYMLINKS
        | sys::RESOLVE_NO_MAGICLINKS
        | sys::RESOLVE_NO_XDEV;
    let fd = sys::openat2(
        proc_sys.as_fd(),
        &rel,
        OFlag::O_WRONLY | OFlag::O_TRUNC,
        resolve,
    )
    .map_err(sys_err(&what, &format!("open /proc/sys/{}", rel.display())))?;
    std::fs::File::from(fd)
        .write_all(value.as_bytes())
        .map_err(|e| {
            sys_err(&what, "write")(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
        })
}

/// Opens `path` inside `/`; `None` when it does not exist (skipped).
fn open_optional(
    root: BorrowedFd<'_>,
    what: &str,
    path: &Path,
) -> Result<Option<OwnedFd>, RootfsError> {
    match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(sys_err(what, "resolve")(e)),
    }
}

fn readonly_path(root: BorrowedFd<'_>, what: &str, path: &Path) -> Result<(), RootfsError> {
    let Some(fd) = open_optional(root, what, path)? else {
        return Ok(());
    };
    let rec_bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(
        Some(&proc_fd(&fd)),
        &proc_fd(&fd),
        None::<&str>,
        rec_bind,
        None::<&str>,
    )
    .map_err(sys_err(what, "bind onto itself"))?;
    let fd = open_in_root(root, path, OFlag::O_PATH).map_err(sys_err(what, "reopen"))?;
    let current = mount_flags_of(
        fstatvfs(fd.as_fd())
            .map_err(sys_err(what, "statvfs"))?
            .flags(),
    );
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC
        | current;
    mount(
        None::<&str>,
        &proc_fd(&fd),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(sys_err(what, "remount read-only"))
}

fn mask_path(root: BorrowedFd<'_>, what: &str, path: &Path) -> Result<(), RootfsError> {
    let Some(fd) = open_optional(root, what, path)? else {
        return Ok(());
    };
    let st = fstat(fd.as_raw_fd()).map_err(sys_err(what, "stat"))?;
    if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
        mount(
            Some("tmpfs"),
            &proc_fd(&fd),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys_err(what, "mount read-only tmpfs"))
    } else {
        mount(
            Some("/dev/null"),
            &proc_fd(&fd),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys_err(what, "bind /dev/null"))
    }
}

/// MS_BIND|MS_REMOUNT|MS_RDONLY keeping the mount's other flags (a
/// remount replaces them all, and a user namespace locks some).
fn remount_ro(path: &Path, what: &str) -> Result<(), RootfsError> {
    let current = mount_flags_of(statvfs(path).map_err(sys_err(what, "statvfs"))?.flags());
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | current;
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(sys_err(what, "remount read-only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_proc_sys_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("kernel.shm_rmid_forced").unwrap(),
            PathBuf::from("kernel/shm_rmid_forced")
        );
        assert_eq!(
            sysctl_path("net/ipv4/ip_forward").unwrap(),
            PathBuf::from("net/ipv4/ip_forward")
        );
    }

    #[test]
    fn sysctl_keys_that_escape_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "..",
            "net..ipv4",
            "net/../../etc",
            "kernel.",
            ".kernel",
            "a/./b",
            "a\0b",
        ] {
            let err = sysctl_path(key).expect_err(&format!("{key:?} must be refused"));
            assert!(err.to_string().starts_with("linux.sysctl"), "{err}");
        }
    }
}
