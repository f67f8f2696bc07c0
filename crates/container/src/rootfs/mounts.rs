//! The `mounts[]` of config.json, mounted in order under the rootfs.
//!
//! Each entry is classified (bind, cgroup, proc/sysfs, anything else),
//! its target resolved and created inside the root (see `safe_path`), and
//! mounted onto `/proc/self/fd/<n>`. Flags a bind mount cannot take
//! (ro, nosuid, ...) need a second MS_REMOUNT call, and propagation changes
//! a call of their own; both re-open the target, because the fd used for
//! the first mount still points at the directory *under* the new mount.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::sys::statvfs::fstatvfs;

use super::options::{atime_flags, parse_options, MountOptions};
use super::safe_path::{create_in_root, create_parent_in_root, open_in_root, proc_fd, Kind};
use super::{cgroup, mount_flags_of, sys_err, RootfsError, RootfsOptions};
use crate::spec::{Mount, Spec};

/// How a `mounts[]` entry is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Bind,
    Cgroup,
    /// proc and sysfs: only onto a real directory, never through a symlink.
    Pseudo,
    Plain,
}

pub(crate) fn plan(kind: &str, o: &MountOptions) -> Plan {
    match kind {
        _ if kind == "bind" || o.is_bind() => Plan::Bind,
        "cgroup" | "cgroup2" => Plan::Cgroup,
        "proc" | "sysfs" => Plan::Pseudo,
        _ => Plan::Plain,
    }
}

/// "mounts[3] (tmpfs on /dev/shm)", or with the source when it says more
/// than the type: "mounts[5] (bind /srv/data on /data)".
pub(crate) fn describe(index: usize, m: &Mount) -> String {
    let kind = m.kind.as_deref().unwrap_or("none");
    match m.source.as_deref().map(Path::display) {
        Some(src) if src.to_string() != kind => {
            format!(
                "mounts[{index}] ({kind} {src} on {})",
                m.destination.display()
            )
        }
        _ => format!("mounts[{index}] ({kind} on {})", m.destination.display()),
    }
}

pub(crate) fn mount_all(
    root: BorrowedFd<'_>,
    spec: &Spec,
    opts: &RootfsOptions,
) -> Result<(), RootfsError> {
    for (i, m) in spec.mounts.iter().enumerate() {
        mount_entry(root, &describe(i, m), m, opts)?;
    }
    Ok(())
}

/// Mounts one entry, then applies its propagation options.
pub(crate) fn mount_entry(
    root: BorrowedFd<'_>,
    what: &str,
    m: &Mount,
    opts: &RootfsOptions,
) -> Result<(), RootfsError> {
    let mut o = parse_options(&m.options);
    if m.destination == Path::new("/dev") {
        // Devices are created in /dev after this; a read-only /dev is
        // remounted so by finalize().
        o.flags -= MsFlags::MS_RDONLY;
    }
    let kind = m.kind.as_deref().unwrap_or("none");
    match plan(kind, &o) {
        Plan::Bind => mount_bind(root, what, m, &o)?,
        Plan::Cgroup => cgroup::mount_cgroup(root, what, m, &o, opts)?,
        Plan::Pseudo => {
            refuse_non_directory(root, what, &m.destination)?;
            match mount_plain(root, what, m, &o) {
                Err(e)
                    if kind == "sysfs"
                        && opts.in_user_namespace
                        && e.errno() == Some(Errno::EPERM) =>
                {
                    // Without its own network namespace a user namespace
                    // may not mount sysfs; runc binds the host's instead.
                    let mut sys = m.clone();
                    sys.source = Some("/sys".into());
                    sys.options.push("rbind".into());
                    mount_bind(root, what, &sys, &parse_options(&sys.options))?;
                }
                other => other?,
            }
        }
        Plan::Plain => mount_plain(root, what, m, &o)?,
    }
    for flag in &o.propagation {
        let target = open_in_root(root, &m.destination, OFlag::O_PATH)
            .map_err(sys_err(what, "reopen destination"))?;
        mount(
            None::<&str>,
            &proc_fd(&target),
            None::<&str>,
            *flag,
            None::<&str>,
        )
        .map_err(sys_err(what, "set propagation"))?;
    }
    Ok(())
}

/// proc and sysfs must go onto an ordinary directory: runc's answer to
/// images whose /proc is a symlink (CVE-2019-19921 and friends).
fn refuse_non_directory(root: BorrowedFd<'_>, what: &str, dest: &Path) -> Result<(), RootfsError> {
    let (dir, name) =
        create_parent_in_root(root, dest).map_err(sys_err(what, "resolve destination"))?;
    let st = match fstatat(
        Some(dir.as_raw_fd()),
        name.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(sys_err(what, "stat destination")(e)),
    };
    let reason = match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => return Ok(()),
        SFlag::S_IFLNK => "destination is a symlink",
        _ => "destination is not a directory",
    };
    Err(RootfsError::Refused {
        what: what.to_string(),
        reason: reason.to_string(),
    })
}

/// A filesystem mount (tmpfs, proc, devpts, mqueue, overlay, ...), or a
/// remount when the options say "remount".
pub(crate) fn mount_plain(
    root: BorrowedFd<'_>,
    what: &str,
    m: &Mount,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let kind = m.kind.as_deref().unwrap_or("none");
    let target = create_in_root(root, &m.destination, Kind::Dir)
        .map_err(sys_err(what, "resolve destination"))?;
    let data = Some(o.data.as_str()).filter(|d| !d.is_empty());
    let source = m.source.as_deref().unwrap_or(Path::new(kind));
    if o.flags.contains(MsFlags::MS_REMOUNT) {
        mount(None::<&str>, &proc_fd(&target), None::<&str>, o.flags, data)
    } else {
        mount(Some(source), &proc_fd(&target), Some(kind), o.flags, data)
    }
    .map_err(sys_err(what, "mount"))
}

/// A bind mount. The source is the host's (relative to the bundle); the
/// destination is created as a directory or an empty file to match it.
pub(crate) fn mount_bind(
    root: BorrowedFd<'_>,
    what: &str,
    m: &Mount,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let src_path = m.source.as_deref().ok_or_else(|| RootfsError::Refused {
        what: what.to_string(),
        reason: "bind mount without a source".to_string(),
    })?;
    let src = open_path(src_path).map_err(sys_err(what, "open source"))?;
    let st = fstat(src.as_raw_fd()).map_err(sys_err(what, "stat source"))?;
    let kind = if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
        Kind::Dir
    } else {
        Kind::File
    };
    let target =
        create_in_root(root, &m.destination, kind).map_err(sys_err(what, "resolve destination"))?;
    let flags = MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC);
    mount(
        Some(&proc_fd(&src)),
        &proc_fd(&target),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(sys_err(what, "mount"))?;
    let extra = o.remount_flags();
    if extra.is_empty() {
        return Ok(());
    }
    remount_bind(root, what, &m.destination, extra, o)
}

/// MS_REMOUNT|MS_BIND with `flags`. If the kernel says EPERM (flags locked
/// by a user namespace), retry keeping the mount's current nosuid, nodev,
/// noexec and atime flags that the options did not explicitly clear.
pub(crate) fn remount_bind(
    root: BorrowedFd<'_>,
    what: &str,
    dest: &Path,
    flags: MsFlags,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let target =
        open_in_root(root, dest, OFlag::O_PATH).map_err(sys_err(what, "reopen destination"))?;
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let first = mount(
        None::<&str>,
        &proc_fd(&target),
        None::<&str>,
        base | flags,
        None::<&str>,
    );
    match first {
        Err(Errno::EPERM) => {}
        other => return other.map_err(sys_err(what, "remount")),
    }
    let st = fstatvfs(target.as_fd()).map_err(sys_err(what, "statvfs"))?;
    let current = mount_flags_of(st.flags());
    let mut keep = current & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    if !o.sets_atime() {
        keep |= current & atime_flags();
    }
    mount(
        None::<&str>,
        &proc_fd(&target),
        None::<&str>,
        base | flags | keep,
        None::<&str>,
    )
    .map_err(sys_err(what, "remount"))
}

/// An `O_PATH` fd of a host path (a bind source; relative to cwd).
pub(crate) fn open_path(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: Option<&str>, source: Option<&str>, dest: &str, opts: &[&str]) -> Mount {
        Mount {
            destination: dest.into(),
            kind: kind.map(str::to_string),
            source: source.map(Into::into),
            options: opts.iter().map(|s| s.to_string()).collect(),
            ..Mount::default()
        }
    }

    #[test]
    fn mounts_are_planned_by_type_and_options() {
        let cases = [
            (m(Some("bind"), Some("/x"), "/x", &[]), Plan::Bind),
            (m(None, Some("/x"), "/x", &["rbind", "ro"]), Plan::Bind),
            (m(Some("none"), Some("/x"), "/x", &["bind"]), Plan::Bind),
            (
                m(Some("cgroup"), Some("cgroup"), "/sys/fs/cgroup", &["ro"]),
                Plan::Cgroup,
            ),
            (m(Some("proc"), Some("proc"), "/proc", &[]), Plan::Pseudo),
            (m(Some("sysfs"), Some("sysfs"), "/sys", &[]), Plan::Pseudo),
            (
                m(Some("tmpfs"), Some("tmpfs"), "/dev", &["mode=755"]),
                Plan::Plain,
            ),
            (
                m(Some("mqueue"), Some("mqueue"), "/dev/mqueue", &[]),
                Plan::Plain,
            ),
        ];
        for (mount, want) in cases {
            let o = parse_options(&mount.options);
            assert_eq!(
                plan(mount.kind.as_deref().unwrap_or("none"), &o),
                want,
                "{mount:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_mount() {
        assert_eq!(
            describe(3, &m(Some("tmpfs"), Some("shm"), "/dev/shm", &[])),
            "mounts[3] (tmpfs shm on /dev/shm)"
        );
        assert_eq!(
            describe(0, &m(Some("proc"), Some("proc"), "/proc", &[])),
            "mounts[0] (proc on /proc)"
        );
        assert_eq!(
            describe(1, &m(None, None, "/x", &[])),
            "mounts[1] (none on /x)"
        );
        let err = sys_err(
            &describe(3, &m(Some("tmpfs"), None, "/dev/shm", &[])),
            "mount",
        )(Errno::EINVAL);
        assert_eq!(
            err.to_string(),
            "mounts[3] (tmpfs on /dev/shm): mount: EINVAL: Invalid argument"
        );
    }
}
