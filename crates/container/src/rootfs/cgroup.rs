//! A `cgroup` mount: the container's view of its cgroups.
//!
//! On a unified (v2) host with a cgroup namespace this is one cgroup2
//! mount. On a v1/hybrid host it is, like runc, a tmpfs with one mount per
//! hierarchy (named after the host's mount point, e.g. `cpu,cpuacct`) plus
//! symlinks for co-mounted controllers (`cpu -> cpu,cpuacct`). With a
//! cgroup namespace each hierarchy is mounted afresh (the kernel roots it
//! at the namespace); without one, the process's own cgroup directories
//! are bind-mounted, so the container never sees its siblings.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::unistd::symlinkat;

use super::mountinfo::{cgroup_hierarchies, parse_mountinfo, parse_proc_cgroup, Hierarchy};
use super::mounts::{mount_bind, mount_plain, remount_bind};
use super::options::{parse_options, MountOptions};
use super::safe_path::create_in_root;
use super::safe_path::Kind;
use super::{sys_err, RootfsError, RootfsOptions};
use crate::spec::Mount;

fn read(path: &str) -> Result<String, RootfsError> {
    std::fs::read_to_string(path).map_err(|source| RootfsError::Read {
        path: path.into(),
        source,
    })
}

pub(crate) fn mount_cgroup(
    root: BorrowedFd<'_>,
    what: &str,
    m: &Mount,
    o: &MountOptions,
    opts: &RootfsOptions,
) -> Result<(), RootfsError> {
    let mounts = parse_mountinfo(&read("/proc/self/mountinfo")?);
    let own = parse_proc_cgroup(&read("/proc/self/cgroup")?);
    let unified = mounts
        .iter()
        .rev()
        .find(|i| i.mount_point == Path::new("/sys/fs/cgroup"))
        .is_some_and(|i| i.fstype == "cgroup2");
    let hierarchies = cgroup_hierarchies(&mounts, &own);
    if unified {
        let h = hierarchies.first().ok_or_else(|| no_cgroups(what))?;
        return mount_hierarchy(root, what, h, &m.destination, o, opts);
    }
    if hierarchies.is_empty() {
        return Err(no_cgroups(what));
    }
    let tmpfs = Mount {
        destination: m.destination.clone(),
        kind: Some("tmpfs".into()),
        source: Some("tmpfs".into()),
        options: vec![
            "nosuid".into(),
            "nodev".into(),
            "noexec".into(),
            "mode=755".into(),
        ],
        ..Mount::default()
    };
    let tmpfs_opts = parse_options(&tmpfs.options);
    mount_plain(root, what, &tmpfs, &tmpfs_opts)?;
    for h in &hierarchies {
        let name = h
            .mount_point
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| no_cgroups(what))?;
        let dest = m.destination.join(&name);
        mount_hierarchy(root, what, h, &dest, o, opts)?;
        comount_links(root, what, &m.destination, &name, &h.controllers)?;
    }
    if o.flags.contains(MsFlags::MS_RDONLY) {
        remount_bind(
            root,
            what,
            &m.destination,
            tmpfs_opts.flags | MsFlags::MS_RDONLY,
            &tmpfs_opts,
        )?;
    }
    Ok(())
}

fn no_cgroups(what: &str) -> RootfsError {
    RootfsError::Refused {
        what: what.to_string(),
        reason: "no cgroup hierarchy found under /sys/fs/cgroup in /proc/self/mountinfo"
            .to_string(),
    }
}

/// One hierarchy at `dest`: mounted afresh in a cgroup namespace, else the
/// process's own directory bind-mounted.
fn mount_hierarchy(
    root: BorrowedFd<'_>,
    what: &str,
    h: &Hierarchy,
    dest: &Path,
    o: &MountOptions,
    opts: &RootfsOptions,
) -> Result<(), RootfsError> {
    let fresh = opts.new_cgroup_namespace;
    let mut options: Vec<String> = flag_words(o);
    if fresh && h.fstype == "cgroup" {
        options.push(h.data.clone());
    }
    if !fresh {
        options.push("rbind".into());
    }
    let sub = Mount {
        destination: dest.to_path_buf(),
        kind: Some(if fresh {
            h.fstype.clone()
        } else {
            "bind".into()
        }),
        source: Some(if fresh {
            PathBuf::from(&h.fstype)
        } else {
            h.own_dir.clone()
        }),
        options,
        ..Mount::default()
    };
    let sub_opts = parse_options(&sub.options);
    if fresh {
        mount_plain(root, what, &sub, &sub_opts)
    } else {
        mount_bind(root, what, &sub, &sub_opts)
    }
}

/// The flag words of the cgroup mount's options, for its sub-mounts.
fn flag_words(o: &MountOptions) -> Vec<String> {
    let pairs = [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_NOATIME, "noatime"),
    ];
    pairs
        .iter()
        .filter(|(f, _)| o.flags.contains(*f))
        .map(|(_, w)| w.to_string())
        .collect()
}

/// `cpu -> cpu,cpuacct` and `cpuacct -> cpu,cpuacct` next to a co-mounted
/// hierarchy, as runc and systemd make them.
fn comount_links(
    root: BorrowedFd<'_>,
    what: &str,
    cgroup_dir: &Path,
    name: &Path,
    controllers: &[String],
) -> Result<(), RootfsError> {
    if controllers.len() < 2 {
        return Ok(());
    }
    let dir = create_in_root(root, cgroup_dir, Kind::Dir)
        .map_err(sys_err(what, "resolve destination"))?;
    for c in controllers.iter().filter(|c| Path::new(c.as_str()) != name) {
        match symlinkat(name, Some(dir.as_raw_fd()), c.as_str()) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(sys_err(what, &format!("symlink {c} -> {}", name.display()))(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_mounts_inherit_the_cgroup_mount_flags() {
        let o = parse_options(&["nosuid", "noexec", "nodev", "relatime", "ro"].map(String::from));
        assert_eq!(
            flag_words(&o),
            ["ro", "nosuid", "nodev", "noexec", "relatime"]
        );
    }
}
