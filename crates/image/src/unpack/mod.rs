//! Safe unpacking of hostile layer tars into an overlay lower directory.
//!
//! A layer tar comes from a registry or an archive someone handed us; it may
//! name `../../etc/passwd`, plant a symlink to `/` and then write "through"
//! it, hard-link host files, or replace a directory with a symlink halfway
//! through the stream. The rules, in the order an entry meets them:
//!
//! 1. [`entry`] validates the entry at the border: the name is cleaned
//!    lexically (a leading `/` dropped, `..` that climbs above the root
//!    refused with an error naming the entry), whiteouts recognised, PAX
//!    mtime and `SCHILY.xattr.*` parsed (overlay's own xattrs dropped).
//! 2. [`root`] opens the parent through `openat2(RESOLVE_IN_ROOT)` relative
//!    to the layer's fd: symlinks met on the way resolve inside the layer,
//!    never outside it. Missing parents are created as 0755 directories.
//! 3. The final component is created by the `*at` call itself
//!    (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`, `mknodat`,
//!    `linkat`), which never follows a link; if something is in the way it
//!    is removed first (a directory stays when the entry is a directory).
//! 4. Ownership, then mode (chown clears setuid), then xattrs (chown clears
//!    `security.capability`), then times. Directory modes and times are
//!    applied after the whole stream, so children neither bump the mtime
//!    nor meet a read-only parent.
//!
//! Whiteouts become overlayfs's form: `.wh.NAME` a 0/0 character device
//! `NAME`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its
//! directory. The stream is read to its very end, past the end-of-archive
//! blocks, so a digest computed by the caller on it is the layer's diff_id.

mod entry;
mod guard;
mod root;
#[cfg(test)]
mod tests;

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmod, fchmodat, makedev, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};

use entry::{Kind, LayerEntry, Meta, Timestamp};
use root::LayerRoot;

/// The xattr that makes a directory opaque in overlayfs.
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
/// Copy buffer for file contents: few large writes instead of many 8 KiB.
const COPY_BUFFER: usize = 256 * 1024;

/// How whiteout entries (`.wh.*`) are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// As overlayfs expects them: 0/0 char devices, opaque xattrs.
    #[default]
    Overlay,
    /// As plain files, exactly as named in the tar.
    Keep,
}

/// Choices for [`unpack_layer`].
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    pub whiteouts: Whiteouts,
}

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries processed (extension headers not counted).
    pub entries: u64,
    /// Bytes of regular file contents written.
    pub bytes: u64,
    /// Whiteouts and opaque markers converted.
    pub whiteouts: u64,
}

/// Why an unpack failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("open layer directory {}: {source}", path.display())]
    Dest { path: PathBuf, source: Errno },
    #[error("read layer tar: {0}")]
    Read(#[source] io::Error),
    #[error("layer entry {path:?}: {source}")]
    Entry { path: String, source: EntryError },
}

/// What was wrong with one entry, or what failed while writing it.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("path escapes the layer")]
    Escapes,
    #[error("hard link target {target:?} escapes the layer")]
    LinkEscapes { target: String },
    #[error("name contains a NUL byte")]
    NulInName,
    #[error("whiteout names no file")]
    BadWhiteout,
    #[error("link entry has no target")]
    NoLinkTarget,
    #[error("only a directory may stand for the layer root")]
    RootNotDir,
    #[error("unsupported entry type {0:?}")]
    Unsupported(char),
    #[error("bad header: {0}")]
    Header(#[source] io::Error),
    #[error("read contents: {0}")]
    Data(#[source] io::Error),
    #[error("write contents: {0}")]
    Write(#[source] io::Error),
    #[error("resolve parent directory {path:?} in the layer: {errno}")]
    Parent { path: String, errno: Errno },
    #[error("hard link to {target:?}: {errno}")]
    Link { target: String, errno: Errno },
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
}

fn sys(op: &'static str) -> impl Fn(Errno) -> EntryError {
    move |errno| EntryError::Sys { op, errno }
}

/// Unpacks the layer tar `tar` into `dest`, an existing empty directory,
/// and reads `tar` to its end.
pub fn unpack_layer<R: Read>(
    tar: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root = LayerRoot::open(dest).map_err(|source| UnpackError::Dest {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut u = Unpacker {
        root,
        opts,
        dirs: Vec::new(),
        stats: UnpackStats::default(),
        buf: vec![0; COPY_BUFFER],
    };
    let mut archive = tar::Archive::new(guard::HeaderGuard::new(tar));
    for e in archive.entries().map_err(UnpackError::Read)? {
        let mut e = e.map_err(UnpackError::Read)?;
        u.apply(&mut e).map_err(|source| UnpackError::Entry {
            path: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            source,
        })?;
    }
    u.finish_dirs()?;
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(UnpackError::Read)?;
    Ok(u.stats)
}

/// A directory whose mode and times are applied after the stream.
struct PendingDir {
    path: PathBuf,
    id: (u64, u64),
    mode: u32,
    mtime: Timestamp,
}

struct Unpacker<'o> {
    root: LayerRoot,
    opts: &'o UnpackOptions,
    dirs: Vec<PendingDir>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn apply<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), EntryError> {
        let le = LayerEntry::from_tar(e, self.opts.whiteouts)?;
        self.stats.entries += 1;
        let at_root = le.path.as_os_str().is_empty();
        match &le.kind {
            Kind::Skip => Ok(()),
            Kind::Opaque => self.opaque(&le.path),
            Kind::Dir if at_root => {
                let fd = self
                    .root
                    .open_dir(Path::new(""))
                    .map_err(sys("open layer root"))?;
                self.dir_meta(fd, &le)
            }
            _ if at_root => Err(EntryError::RootNotDir),
            kind => {
                let (dir, name) = self.parent(&le.path)?;
                let (d, n) = (dir.as_raw_fd(), name.as_c_str());
                match kind {
                    Kind::File => self.file(d, n, &le, e),
                    Kind::Dir => self.dir(d, n, &le),
                    Kind::Symlink { target } => {
                        let t = CString::new(target.as_os_str().as_bytes())
                            .map_err(|_| EntryError::NulInName)?;
                        replacing(d, n, || symlinkat(t.as_c_str(), Some(d), n))
                            .map_err(sys("symlinkat"))?;
                        node_meta(d, n, &le.meta, &le.xattrs, true)
                    }
                    Kind::HardLink { target } => self.hard_link(d, n, target),
                    Kind::Fifo => self.node(d, n, &le, SFlag::S_IFIFO, 0),
                    Kind::CharDev { major, minor } => {
                        self.node(d, n, &le, SFlag::S_IFCHR, makedev(*major as _, *minor as _))
                    }
                    Kind::BlockDev { major, minor } => {
                        self.node(d, n, &le, SFlag::S_IFBLK, makedev(*major as _, *minor as _))
                    }
                    Kind::Whiteout => self.whiteout(d, n, &le.meta),
                    Kind::Skip | Kind::Opaque => Ok(()),
                }
            }
        }
    }

    /// The parent directory of `path` (created if missing) and the name.
    fn parent(&self, path: &Path) -> Result<(OwnedFd, CString), EntryError> {
        let parent = path.parent().unwrap_or(Path::new(""));
        let dir = self
            .root
            .make_dir_all(parent)
            .map_err(|errno| EntryError::Parent {
                path: parent.to_string_lossy().into_owned(),
                errno,
            })?;
        let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        let name = CString::new(name).map_err(|_| EntryError::NulInName)?;
        Ok((dir, name))
    }

    fn file<R: Read>(
        &mut self,
        dir: RawFd,
        name: &CStr,
        le: &LayerEntry,
        data: &mut R,
    ) -> Result<(), EntryError> {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open = || nix::fcntl::openat(Some(dir), name, flags, Mode::from_bits_truncate(0o600));
        let fd = replacing(dir, name, open).map_err(sys("openat(O_CREAT|O_EXCL|O_NOFOLLOW)"))?;
        // SAFETY: openat just returned this fd; nothing else owns it.
        let mut f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        self.stats.bytes += copy(data, &mut f, &mut self.buf)?;
        let fd = f.as_raw_fd();
        fchown(
            fd,
            Some(Uid::from_raw(le.meta.uid)),
            Some(Gid::from_raw(le.meta.gid)),
        )
        .map_err(sys("fchown"))?;
        fchmod(fd, Mode::from_bits_truncate(le.meta.mode)).map_err(sys("fchmod"))?;
        for (k, v) in &le.xattrs {
            let k = CString::new(k.as_slice()).map_err(|_| EntryError::NulInName)?;
            tolerate_unsupported(root::fsetxattr(fd, &k, v)).map_err(sys("fsetxattr"))?;
        }
        root::set_times(fd, None, le.meta.mtime).map_err(sys("futimens"))
    }

    fn dir(&mut self, dir: RawFd, name: &CStr, le: &LayerEntry) -> Result<(), EntryError> {
        let mkdir = || mkdirat(Some(dir), name, Mode::from_bits_truncate(0o755));
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EEXIST) if root::is_dir_at(dir, name).map_err(sys("fstatat"))? => {}
            Err(Errno::EEXIST) => {
                root::remove_at(dir, name).map_err(sys("remove existing entry"))?;
                mkdir().map_err(sys("mkdirat"))?;
            }
            Err(e) => return Err(sys("mkdirat")(e)),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd =
            nix::fcntl::openat(Some(dir), name, flags, Mode::empty()).map_err(sys("openat"))?;
        // SAFETY: openat just returned this fd; nothing else owns it.
        self.dir_meta(unsafe { OwnedFd::from_raw_fd(fd) }, le)
    }

    /// Owner and xattrs now; mode and times recorded for the end.
    fn dir_meta(&mut self, fd: OwnedFd, le: &LayerEntry) -> Result<(), EntryError> {
        let raw = fd.as_raw_fd();
        fchown(
            raw,
            Some(Uid::from_raw(le.meta.uid)),
            Some(Gid::from_raw(le.meta.gid)),
        )
        .map_err(sys("fchown"))?;
        for (k, v) in &le.xattrs {
            let k = CString::new(k.as_slice()).map_err(|_| EntryError::NulInName)?;
            tolerate_unsupported(root::fsetxattr(raw, &k, v)).map_err(sys("fsetxattr"))?;
        }
        self.dirs.push(PendingDir {
            path: le.path.clone(),
            id: root::identity(fd.as_fd()).map_err(sys("fstat"))?,
            mode: le.meta.mode,
            mtime: le.meta.mtime,
        });
        Ok(())
    }

    fn node(
        &mut self,
        dir: RawFd,
        name: &CStr,
        le: &LayerEntry,
        kind: SFlag,
        dev: libc::dev_t,
    ) -> Result<(), EntryError> {
        let perm = Mode::from_bits_truncate(le.meta.mode);
        replacing(dir, name, || mknodat(Some(dir), name, kind, perm, dev))
            .map_err(sys("mknodat"))?;
        node_meta(dir, name, &le.meta, &le.xattrs, false)
    }

    fn hard_link(&mut self, dir: RawFd, name: &CStr, target: &Path) -> Result<(), EntryError> {
        let shown = || target.to_string_lossy().into_owned();
        let link_err = |errno| EntryError::Link {
            target: shown(),
            errno,
        };
        let tname = target.file_name().ok_or(link_err(Errno::EPERM))?;
        let tname = CString::new(tname.as_bytes()).map_err(|_| EntryError::NulInName)?;
        let tparent = target.parent().unwrap_or(Path::new(""));
        let tdir = self.root.open_dir(tparent).map_err(link_err)?;
        let t = tdir.as_raw_fd();
        let link = || linkat(Some(t), tname.as_c_str(), Some(dir), name, AtFlags::empty());
        replacing(dir, name, link).map_err(link_err)
    }

    fn whiteout(&mut self, dir: RawFd, name: &CStr, meta: &Meta) -> Result<(), EntryError> {
        let node = || mknodat(Some(dir), name, SFlag::S_IFCHR, Mode::empty(), 0);
        replacing(dir, name, node).map_err(sys("mknodat whiteout"))?;
        chown_at(dir, name, meta)?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn opaque(&mut self, path: &Path) -> Result<(), EntryError> {
        let fd = self
            .root
            .make_dir_all(path)
            .map_err(|errno| EntryError::Parent {
                path: path.to_string_lossy().into_owned(),
                errno,
            })?;
        root::fsetxattr(fd.as_raw_fd(), OPAQUE_XATTR, b"y").map_err(sys("fsetxattr opaque"))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Applies the recorded directory modes and times, each to the
    /// directory the entry created (a path since replaced is skipped).
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        for d in std::mem::take(&mut self.dirs) {
            let Ok(fd) = self.root.open_dir_nofollow(&d.path) else {
                continue;
            };
            if root::identity(fd.as_fd()).ok() != Some(d.id) {
                continue;
            }
            let fail = |source| UnpackError::Entry {
                path: d.path.to_string_lossy().into_owned(),
                source,
            };
            fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(d.mode))
                .map_err(|e| fail(sys("fchmod")(e)))?;
            root::set_times(fd.as_raw_fd(), None, d.mtime).map_err(|e| fail(sys("futimens")(e)))?;
        }
        Ok(())
    }
}

/// Runs `create`; if something is in the way, removes it and runs again.
fn replacing<T>(
    dir: RawFd,
    name: &CStr,
    create: impl Fn() -> Result<T, Errno>,
) -> Result<T, Errno> {
    match create() {
        Err(Errno::EEXIST) => {
            root::remove_at(dir, name)?;
            create()
        }
        other => other,
    }
}

fn chown_at(dir: RawFd, name: &CStr, meta: &Meta) -> Result<(), EntryError> {
    let (u, g) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
    fchownat(
        Some(dir),
        name,
        Some(u),
        Some(g),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys("fchownat"))
}

/// Metadata of a node that cannot be opened for writing (symlink, fifo,
/// device), set by name in its directory without following it.
fn node_meta(
    dir: RawFd,
    name: &CStr,
    meta: &Meta,
    xattrs: &[(Vec<u8>, Vec<u8>)],
    symlink: bool,
) -> Result<(), EntryError> {
    chown_at(dir, name, meta)?;
    if !symlink {
        let mode = Mode::from_bits_truncate(meta.mode);
        fchmodat(Some(dir), name, mode, FchmodatFlags::NoFollowSymlink).map_err(sys("fchmodat"))?;
    }
    for (k, v) in xattrs {
        let k = CString::new(k.as_slice()).map_err(|_| EntryError::NulInName)?;
        tolerate_unsupported(root::lsetxattr_at(dir, name, &k, v)).map_err(sys("lsetxattr"))?;
    }
    root::set_times(dir, Some(name), meta.mtime).map_err(sys("utimensat"))
}

/// Xattrs the filesystem cannot hold are dropped, as Docker does.
fn tolerate_unsupported(r: Result<(), Errno>) -> Result<(), Errno> {
    match r {
        Err(Errno::ENOTSUP | Errno::EPERM) => Ok(()),
        other => other,
    }
}

fn copy(r: &mut impl Read, w: &mut File, buf: &mut [u8]) -> Result<u64, EntryError> {
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EntryError::Data(e)),
        };
        w.write_all(&buf[..n]).map_err(EntryError::Write)?;
        total += n as u64;
    }
}
