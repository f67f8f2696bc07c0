//! /dev: the default devices, `linux.devices`, and the usual symlinks.
//!
//! Outside a user namespace devices are made with mknod; inside one mknod
//! is forbidden, so (as runc does) the host's node is bind-mounted onto an
//! empty file. Nothing here is done when the spec bind-mounts /dev from
//! the host: that /dev is the host's and must not be written to.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::mounts::open_path;
use super::options::parse_options;
use super::safe_path::{create_in_root, create_parent_in_root, proc_fd, Kind};
use super::{sys_err, RootfsError, RootfsOptions};
use crate::spec::{Device, Spec};

/// The devices every container gets (the OCI spec's list), all 0666.
const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Whether berth fills /dev at all: not when it is a bind mount.
pub(crate) fn dev_is_ours(spec: &Spec) -> bool {
    !spec.mounts.iter().any(|m| {
        m.destination == Path::new("/dev")
            && (m.kind.as_deref() == Some("bind") || parse_options(&m.options).is_bind())
    })
}

/// `(what, device)` to create: `linux.devices`, then each default device
/// the spec neither lists nor mounts something onto.
pub(crate) fn devices_to_create(spec: &Spec) -> Vec<(String, Device)> {
    let listed = &spec.linux().devices;
    let mut out: Vec<(String, Device)> = listed
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                format!("linux.devices[{i}] {}", d.path.display()),
                d.clone(),
            )
        })
        .collect();
    for (path, major, minor) in DEFAULT_DEVICES {
        let taken = listed.iter().any(|d| d.path == Path::new(path))
            || spec.mounts.iter().any(|m| m.destination == Path::new(path));
        if !taken {
            let dev = Device {
                kind: "c".into(),
                path: PathBuf::from(path),
                major,
                minor,
                file_mode: Some(0o666),
                uid: Some(0),
                gid: Some(0),
            };
            out.push((format!("device {path}"), dev));
        }
    }
    out
}

/// The symlinks of /dev: `(name, target)`.
pub(crate) fn dev_symlinks(spec: &Spec) -> Vec<(&'static str, &'static str)> {
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    let has_proc = spec
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/proc") && m.kind.as_deref() == Some("proc"));
    if has_proc {
        links.push(("core", "/proc/kcore"));
    }
    links
}

pub(crate) fn setup_dev(
    root: BorrowedFd<'_>,
    spec: &Spec,
    opts: &RootfsOptions,
) -> Result<(), RootfsError> {
    if !dev_is_ours(spec) {
        return Ok(());
    }
    for (what, dev) in devices_to_create(spec) {
        create_device(root, &what, &dev, opts.in_user_namespace)?;
    }
    let dev =
        create_in_root(root, Path::new("/dev"), Kind::Dir).map_err(sys_err("/dev", "resolve"))?;
    for (name, target) in dev_symlinks(spec) {
        symlink(dev.as_raw_fd(), name, target)?;
    }
    // /dev/ptmx must be the devpts instance's, whatever the image has.
    match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys_err("/dev/ptmx", "unlink")(e)),
    }
    symlink(dev.as_raw_fd(), "ptmx", "pts/ptmx")
}

fn symlink(dir: i32, name: &str, target: &str) -> Result<(), RootfsError> {
    match symlinkat(target, Some(dir), name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(sys_err(
            &format!("/dev/{name}"),
            &format!("symlink to {target}"),
        )(e)),
    }
}

fn create_device(
    root: BorrowedFd<'_>,
    what: &str,
    dev: &Device,
    userns: bool,
) -> Result<(), RootfsError> {
    if userns {
        return bind_device(root, what, dev);
    }
    let kind = match dev.kind.as_str() {
        "b" => SFlag::S_IFBLK,
        "p" => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = Mode::from_bits_truncate(dev.file_mode.unwrap_or(0o666) & 0o7777);
    let (dir, name) = create_parent_in_root(root, &dev.path).map_err(sys_err(what, "resolve"))?;
    let dir = Some(dir.as_raw_fd());
    let rdev = libc::makedev(dev.major as u32, dev.minor as u32);
    match mknodat(dir, name.as_os_str(), kind, mode, rdev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::EPERM) => return bind_device(root, what, dev),
        Err(e) => return Err(sys_err(what, "mknod")(e)),
    }
    // mknod applied the umask; the spec's mode is meant literally.
    fchmodat(dir, name.as_os_str(), mode, FchmodatFlags::FollowSymlink)
        .map_err(sys_err(what, "chmod"))?;
    let (uid, gid) = (dev.uid.map(Uid::from_raw), dev.gid.map(Gid::from_raw));
    fchownat(
        dir,
        name.as_os_str(),
        uid,
        gid,
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys_err(what, "chown"))
}

/// The host's node at the same path, bind-mounted onto an empty file.
fn bind_device(root: BorrowedFd<'_>, what: &str, dev: &Device) -> Result<(), RootfsError> {
    let src = open_path(&dev.path).map_err(sys_err(what, "open host device"))?;
    let target = create_in_root(root, &dev.path, Kind::File).map_err(sys_err(what, "resolve"))?;
    mount(
        Some(&proc_fd(&src)),
        &proc_fd(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys_err(what, "bind host device"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Linux, Mount};

    fn spec_with(mounts: Vec<Mount>, devices: Vec<Device>) -> Spec {
        Spec {
            mounts,
            linux: Some(Linux {
                devices,
                ..Linux::default()
            }),
            ..Spec::default()
        }
    }

    fn mnt(dest: &str, kind: &str, opts: &[&str]) -> Mount {
        Mount {
            destination: dest.into(),
            kind: Some(kind.into()),
            source: Some(dest.into()),
            options: opts.iter().map(|s| s.to_string()).collect(),
            ..Mount::default()
        }
    }

    #[test]
    fn default_devices_skip_what_the_spec_provides() {
        let fuse = Device {
            kind: "c".into(),
            path: "/dev/fuse".into(),
            major: 10,
            minor: 229,
            file_mode: None,
            uid: None,
            gid: None,
        };
        let mut null = fuse.clone();
        null.path = "/dev/null".into();
        let spec = spec_with(vec![mnt("/dev/tty", "bind", &[])], vec![fuse, null]);
        let paths: Vec<_> = devices_to_create(&spec)
            .into_iter()
            .map(|(_, d)| d.path)
            .collect();
        let want: Vec<PathBuf> = [
            "/dev/fuse",
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(paths, want);
    }

    #[test]
    fn bind_mounted_dev_is_left_alone() {
        assert!(dev_is_ours(&spec_with(
            vec![mnt("/dev", "tmpfs", &["mode=755"])],
            vec![]
        )));
        assert!(!dev_is_ours(&spec_with(
            vec![mnt("/dev", "none", &["rbind"])],
            vec![]
        )));
        assert!(!dev_is_ours(&spec_with(
            vec![mnt("/dev", "bind", &[])],
            vec![]
        )));
    }

    #[test]
    fn dev_core_only_with_proc() {
        let without = dev_symlinks(&spec_with(vec![], vec![]));
        assert!(!without.iter().any(|(n, _)| *n == "core"));
        let with = dev_symlinks(&spec_with(vec![mnt("/proc", "proc", &[])], vec![]));
        assert!(with.contains(&("core", "/proc/kcore")));
        assert!(with.contains(&("fd", "/proc/self/fd")));
    }
}
