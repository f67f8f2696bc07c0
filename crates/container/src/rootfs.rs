//! The container's root filesystem: mounts, /dev, pivot_root, hardening.
//!
//! The container's init calls, in its new mount namespace and with the
//! bundle as cwd: [`prepare`] (propagation, the spec's mounts, /dev), then
//! [`pivot`] (pivot_root into the rootfs), then — after hostname and
//! console — [`finalize`] (sysctls, readonly and masked paths, read-only
//! root). The order and the details follow runc, which is what images and
//! orchestrators are tested against.
//!
//! Every path under the rootfs is untrusted (see [`safe_path`]): mount
//! targets are resolved with `openat2(RESOLVE_IN_ROOT)` and mounted onto
//! through `/proc/self/fd/<n>`, so a symlink in an image can never redirect
//! a mount onto the host.

mod cgroup;
mod devices;
mod harden;
mod mountinfo;
mod mounts;
mod options;
mod safe_path;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::FsFlags;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::spec::Spec;

pub use options::propagation_flag;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A syscall failed; `what` names the mount, device or path.
    #[error("{what}: {call}: {errno}")]
    Syscall {
        what: String,
        call: String,
        errno: Errno,
    },
    /// The request is refused before any syscall (unsafe or impossible).
    #[error("{what}: {reason}")]
    Refused { what: String, reason: String },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.sysctl {key:?}: {reason}")]
    InvalidSysctl { key: String, reason: String },
}

impl RootfsError {
    /// The errno of a failed syscall, if that is what this is.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            RootfsError::Syscall { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Builds the error of a failed `call` on `what`, for `map_err`.
pub(crate) fn sys_err(what: &str, call: &str) -> impl FnOnce(Errno) -> RootfsError {
    let (what, call) = (what.to_string(), call.to_string());
    move |errno| RootfsError::Syscall { what, call, errno }
}

/// How the container's namespaces shape the rootfs setup.
#[derive(Debug, Clone, Copy, Default)]
pub struct RootfsOptions {
    /// Move the rootfs onto `/` and chroot instead of pivot_root (a rootfs
    /// on a ramfs, where pivot_root is impossible).
    pub no_pivot: bool,
    /// The init is in a new user namespace: mknod is not allowed, locked
    /// mount flags must be kept, sysfs may not be mountable.
    pub in_user_namespace: bool,
    /// The init is in a new cgroup namespace: cgroup filesystems can be
    /// mounted afresh instead of bind-mounting the host's.
    pub new_cgroup_namespace: bool,
}

/// Sets up the mounts of the rootfs at `rootfs`, before pivot_root: makes
/// `/` slave (or `linux.rootfsPropagation`), turns the rootfs into a mount
/// point, mounts every `mounts[]` entry in order and fills /dev.
pub fn prepare(spec: &Spec, rootfs: &Path, opts: &RootfsOptions) -> Result<(), RootfsError> {
    let prop = spec
        .linux()
        .rootfs_propagation
        .as_deref()
        .and_then(propagation_flag)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
        .map_err(sys_err("root propagation of /", "mount"))?;
    make_parent_private(rootfs)?;
    let what = format!("rootfs {}", rootfs.display());
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys_err(&what, "bind onto itself"))?;
    let root = open_dir(rootfs, OFlag::O_PATH).map_err(sys_err(&what, "open"))?;
    mounts::mount_all(root.as_fd(), spec, opts)?;
    devices::setup_dev(root.as_fd(), spec, opts)
}

/// pivot_root refuses a new root whose parent mount is shared; runc makes
/// that one mount private (the rest of the tree keeps its propagation).
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|source| RootfsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let abs = std::fs::canonicalize(rootfs).map_err(|source| RootfsError::Read {
        path: rootfs.to_path_buf(),
        source,
    })?;
    let mounts = mountinfo::parse_mountinfo(&text);
    match mountinfo::mount_of(&mounts, &abs) {
        Some(parent) if parent.is_shared() => mount(
            None::<&str>,
            &parent.mount_point,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(sys_err(
            &format!(
                "parent mount {} of the rootfs",
                parent.mount_point.display()
            ),
            "make private",
        )),
        _ => Ok(()),
    }
}

fn open_dir(path: &Path, extra: OFlag) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | extra,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `rootfs` the process's `/` and ends in it (`chdir("/")`).
///
/// pivot_root uses runc's trick: with the new root as cwd,
/// `pivot_root(".", ".")` stacks the old root on top of the new one; it is
/// then made rslave (so its unmount does not propagate to the host) and
/// detached. With `no_pivot`, the rootfs is moved onto `/` and chrooted.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    let what = format!("pivot into {}", rootfs.display());
    if no_pivot {
        chdir(rootfs).map_err(sys_err(&what, "chdir"))?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys_err(&what, "move mount onto /"))?;
        chroot(".").map_err(sys_err(&what, "chroot"))?;
    } else {
        let new_root =
            open_dir(rootfs, OFlag::O_RDONLY).map_err(sys_err(&what, "open new root"))?;
        let old_root =
            open_dir(Path::new("/"), OFlag::O_RDONLY).map_err(sys_err(&what, "open old root"))?;
        fchdir(new_root.as_raw_fd()).map_err(sys_err(&what, "fchdir"))?;
        pivot_root(".", ".").map_err(sys_err(&what, "pivot_root"))?;
        fchdir(old_root.as_raw_fd()).map_err(sys_err(&what, "fchdir old root"))?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys_err(&what, "make old root rslave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys_err(&what, "detach old root"))?;
    }
    chdir("/").map_err(sys_err(&what, "chdir /"))
}

/// After pivot_root: root propagation, sysctls, readonly paths, masked
/// paths, then the read-only remount of `/` (and of /dev if asked).
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    harden::finalize(spec)
}

/// The mount flags that `statvfs` reports for a mount, so a remount can
/// keep them (a remount replaces all per-mount flags).
pub(crate) fn mount_flags_of(st: FsFlags) -> MsFlags {
    let pairs = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_SYNCHRONOUS, MsFlags::MS_SYNCHRONOUS),
        (FsFlags::ST_MANDLOCK, MsFlags::MS_MANDLOCK),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(st_flag, _)| st.contains(*st_flag))
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | *ms)
}
