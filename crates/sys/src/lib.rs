//! Leaf helpers that both `container` and `image` need, with no policy.
//!
//! The architecture forbids `image` from depending on `container`, yet both
//! resolve paths under an untrusted root with `openat2` and both stamp RFC
//! 3339 times without a date crate; both binaries print errors on one line. One copy of each lives here so a fix
//! (say, a new errno to retry on) reaches both; this crate depends on
//! nothing of berth's and decides nothing about containers or images.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

pub mod error;
pub mod time;

/// `RESOLVE_IN_ROOT`: `/`, `..` and absolute symlinks resolve at `dir`.
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;
/// `RESOLVE_BENEATH`: fail with EXDEV on anything that leaves `dir`.
pub const RESOLVE_BENEATH: u64 = libc::RESOLVE_BENEATH;
/// `RESOLVE_NO_SYMLINKS`: fail with ELOOP on any symlink.
pub const RESOLVE_NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;
/// `RESOLVE_NO_MAGICLINKS`: refuse `/proc/<pid>/fd`-style magic links.
pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;
/// `RESOLVE_NO_XDEV`: fail with EXDEV on crossing a mount point.
pub const RESOLVE_NO_XDEV: u64 = libc::RESOLVE_NO_XDEV;

/// `AT_FDCWD` as a `BorrowedFd`, for `*at` calls relative to the working
/// directory.
// SAFETY: AT_FDCWD (-100) is not -1 and is no open file at all but a value
// every `*at` syscall accepts for the working directory; nothing closes it.
pub const CWD: BorrowedFd<'static> = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };

/// `struct open_how` of `<linux/openat2.h>`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Raw `openat2(2)` of `path` relative to `dir` (an empty path means `dir`
/// itself); always adds `O_CLOEXEC`. Retries on EAGAIN/EINTR, which openat2
/// returns when a concurrent rename makes a `..` lookup unsafe.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | OFlag::O_CLOEXEC).bits() as u64,
        mode: 0,
        resolve,
    };
    for _ in 0..16 {
        // SAFETY: cpath is a valid NUL-terminated string and `how` a valid
        // open_how of the size passed; both outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                cpath.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            // SAFETY: openat2 returned a new fd that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn in_root_keeps_dotdot_and_absolute_links_inside() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("etc")).expect("mkdir etc");
        std::os::unix::fs::symlink("/etc", root.path().join("abs")).expect("symlink");
        let dir =
            openat2(CWD, root.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, 0).expect("open root");
        let in_root = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        for p in ["../../etc", "/etc", "abs", ""] {
            openat2(dir.as_fd(), Path::new(p), OFlag::O_PATH, in_root)
                .unwrap_or_else(|e| panic!("{p:?} should resolve inside: {e}"));
        }
        // The host's /etc/passwd is not reachable through the link.
        let passwd = openat2(dir.as_fd(), Path::new("abs/passwd"), OFlag::O_PATH, in_root);
        assert_eq!(passwd.err(), Some(Errno::ENOENT));
    }

    #[test]
    fn beneath_refuses_escape_and_nul_is_einval() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir =
            openat2(CWD, root.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, 0).expect("open root");
        let up = openat2(dir.as_fd(), Path::new(".."), OFlag::O_PATH, RESOLVE_BENEATH);
        assert_eq!(up.err(), Some(Errno::EXDEV));
        let nul = openat2(dir.as_fd(), Path::new("a\0b"), OFlag::O_PATH, 0);
        assert_eq!(nul.err(), Some(Errno::EINVAL));
    }

    #[test]
    fn fds_are_close_on_exec() {
        let fd = openat2(CWD, Path::new("/"), OFlag::O_RDONLY, 0).expect("open /");
        let flags =
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}
