//! Paths under a container root, resolved without leaving it.
//!
//! The rootfs is hostile input: any component of a mount destination or a
//! device path may be a symlink to `/etc`, to `../../..`, or to a host path
//! that does not exist yet. Everything here is fd-relative and every lookup
//! goes through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so the
//! kernel treats the rootfs fd as `/` for symlinks and `..` alike (the
//! syscall wrapper is [`sys::openat2`], shared with the image crate).
//! Missing components are created one at a time with `mkdirat`/`openat(O_EXCL)` in a
//! directory fd already resolved inside the root; a dangling symlink is
//! expanded in user space (its target is again resolved in the root), so a
//! link to a missing host path creates that path *inside* the rootfs.
//!
//! Callers mount onto `/proc/self/fd/<n>` of the returned `O_PATH` fd, as
//! runc does, so the kernel mounts exactly on the inode resolved here.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{readlinkat, OFlag};
use nix::sys::stat::{mkdirat, Mode};

/// Symlink expansions allowed in one lookup, the kernel's own limit.
const MAX_SYMLINKS: usize = 40;

/// What to create at the end of a path that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// Opens `path` (absolute or relative, always taken relative to `root`)
/// with `root` as `/`.
pub(crate) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
) -> Result<OwnedFd, Errno> {
    sys::openat2(
        root,
        &relative(path),
        flags,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
}

/// `path` without its leading `/`.
pub(crate) fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

/// The magic link through which syscalls reach exactly `fd`'s inode.
pub(crate) fn proc_fd(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// An `O_PATH` fd of `path` inside `root`, creating what is missing: the
/// directories on the way, and a directory or an empty file at the end.
pub(crate) fn create_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: Kind,
) -> Result<OwnedFd, Errno> {
    match open_in_root(root, path, OFlag::O_PATH) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut todo = components(path);
    let mut done = PathBuf::new();
    let mut dir = open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let want = if todo.is_empty() { kind } else { Kind::Dir };
        let candidate = done.join(&name);
        let dir_flag = if want == Kind::Dir {
            OFlag::O_DIRECTORY
        } else {
            OFlag::empty()
        };
        match open_in_root(root, &candidate, OFlag::O_PATH | dir_flag) {
            Ok(fd) => {
                (dir, done) = (fd, candidate);
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        match readlinkat(Some(dir.as_raw_fd()), name.as_os_str()) {
            Ok(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = PathBuf::from(target);
                for c in components(&target).into_iter().rev() {
                    todo.push_front(c);
                }
                if target.is_absolute() {
                    done = PathBuf::new();
                    dir = open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
                }
                continue;
            }
            Err(Errno::ENOENT) => create_entry(dir.as_fd(), &name, want)?,
            // It exists and is no symlink, yet the lookup said ENOENT: the
            // tree changed under us; refuse rather than guess.
            Err(_) => return Err(Errno::ENOENT),
        }
        dir = open_in_root(root, &candidate, OFlag::O_PATH | dir_flag)?;
        done = candidate;
    }
    Ok(dir)
}

fn create_entry(dir: BorrowedFd<'_>, name: &OsStr, kind: Kind) -> Result<(), Errno> {
    let res = match kind {
        Kind::Dir => mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)),
        Kind::File => nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(|fd| {
            // SAFETY: openat just returned this fd; we own it and close it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) })
        }),
    };
    match res {
        Err(Errno::EEXIST) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory that holds `path` (created as needed) and the final name,
/// for syscalls that create an entry themselves (mknodat, symlinkat).
pub(crate) fn create_parent_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
) -> Result<(OwnedFd, OsString), Errno> {
    let rel = relative(path);
    let name = match rel.components().next_back() {
        Some(Component::Normal(n)) => n.to_os_string(),
        _ => return Err(Errno::EINVAL),
    };
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = create_in_root(root, parent, Kind::Dir)?;
    Ok((dir, name))
}
