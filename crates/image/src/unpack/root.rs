//! The layer directory, reached only through its file descriptor.
//!
//! Every lookup of a parent directory goes through `openat2` with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` relative to the layer's fd, so
//! symlinks and `..` planted by earlier entries resolve inside the layer as
//! if it were `/` (the way Docker's chrooted untar sees them). The final
//! component is created by the `*at` call itself with `O_EXCL`/no-follow
//! semantics; whatever already sits there is removed first (fd-relative,
//! never following a symlink), so no write ever goes through a link.
//! The `openat2` wrapper is [`sys::openat2`], shared with
//! `container::rootfs::safe_path` (which the image crate may not depend on).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::entry::Timestamp;

const IN_ROOT: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// The layer directory being filled.
pub(crate) struct LayerRoot {
    fd: OwnedFd,
}

impl LayerRoot {
    /// Opens `dest`, which must be a directory (a symlink is refused).
    pub(crate) fn open(dest: &Path) -> Result<LayerRoot, Errno> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        let fd = sys::openat2(sys::CWD, dest, flags, 0)?;
        Ok(LayerRoot { fd })
    }

    /// Opens the directory `rel` inside the layer (read-only, so the fd
    /// serves fchown/fsetxattr as well as `*at` calls).
    pub(crate) fn open_dir(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        sys::openat2(
            self.fd.as_fd(),
            rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            IN_ROOT,
        )
    }

    /// Like [`open_dir`](Self::open_dir) but refusing a symlink as the
    /// final component, for re-finding a directory an entry created.
    pub(crate) fn open_dir_nofollow(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        sys::openat2(self.fd.as_fd(), rel, flags, IN_ROOT)
    }

    /// Opens directory `rel`, creating missing components as 0755
    /// directories (as Docker does for parents a tar omits). A component
    /// that exists but is no directory, or a dangling symlink, is an error.
    pub(crate) fn make_dir_all(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        match self.open_dir(rel) {
            Err(Errno::ENOENT) => {}
            other => return other,
        }
        let mut done = PathBuf::new();
        let mut dir = self.open_dir(&done)?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(Errno::EINVAL);
            };
            done.push(name);
            match self.open_dir(&done) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
            match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                // EEXIST after ENOENT: a dangling symlink sits here.
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            dir = self.open_dir(&done)?;
        }
        Ok(dir)
    }
}

/// `(st_dev, st_ino)` of `fd`.
pub(crate) fn identity(fd: BorrowedFd<'_>) -> Result<(u64, u64), Errno> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    Ok((st.st_dev, st.st_ino))
}

/// Whether `name` in `dir` is a directory (not following a symlink).
pub(crate) fn is_dir_at(dir: RawFd, name: &CStr) -> Result<bool, Errno> {
    let st = fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

/// Removes `name` in `dir` whatever it is, a directory with all it holds;
/// never follows a symlink. A missing `name` is not an error.
pub(crate) fn remove_at(dir: RawFd, name: &CStr) -> Result<(), Errno> {
    match unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(Some(dir), name, flags, Mode::empty())?;
    // SAFETY: openat just returned this fd; nothing else owns it.
    let mut sub = Dir::from(unsafe { OwnedFd::from_raw_fd(fd) })?;
    let children: Vec<CString> = sub
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_c_str() != c"." && n.as_c_str() != c"..")
        .collect();
    for child in children {
        remove_at(sub.as_raw_fd(), &child)?;
    }
    unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir)
}

/// A `timespec` pair (atime = mtime) for utimensat/futimens.
pub(crate) fn times(t: Timestamp) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: t.nsec as libc::c_long,
    };
    [ts, ts]
}

/// Sets atime and mtime of `name` in `dir` (or of `dir` itself when `name`
/// is `None`), not following a symlink.
pub(crate) fn set_times(dir: RawFd, name: Option<&CStr>, t: Timestamp) -> Result<(), Errno> {
    let ts = times(t);
    let ret = match name {
        // SAFETY: `n` is a valid C string and `ts` two valid timespecs; both
        // outlive the call.
        Some(n) => unsafe {
            libc::utimensat(dir, n.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
        },
        // SAFETY: `ts` is two valid timespecs that outlive the call.
        None => unsafe { libc::futimens(dir, ts.as_ptr()) },
    };
    Errno::result(ret).map(drop)
}

/// Sets the extended attribute `name` of the open file `fd`.
pub(crate) fn fsetxattr(fd: RawFd, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: name is a valid C string, value a valid buffer of its length.
    let ret = unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(ret).map(drop)
}

/// Sets the extended attribute `xname` of `name` in `dir` without following
/// a symlink: `lsetxattr` through the directory's `/proc/self/fd` link,
/// which only the parent lookup traverses.
pub(crate) fn lsetxattr_at(
    dir: RawFd,
    name: &CStr,
    xname: &CStr,
    value: &[u8],
) -> Result<(), Errno> {
    let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: path and xname are valid C strings, value a valid buffer.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            xname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}
