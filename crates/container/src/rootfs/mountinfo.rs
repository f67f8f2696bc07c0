//! `/proc/self/mountinfo` and `/proc/self/cgroup`, parsed.
//!
//! The rootfs code needs the host's mount table twice: to find the mount
//! holding the rootfs (pivot_root refuses a shared parent) and to find the
//! cgroup v1 hierarchies and the process's place in each of them.

use std::path::{Path, PathBuf};

/// One line of mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// The directory of the filesystem that forms this mount's root.
    pub root: String,
    pub mount_point: PathBuf,
    /// Optional fields: "shared:N", "master:N", ...
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl MountInfo {
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let (_id, _parent, _dev) = (l.next()?, l.next()?, l.next()?);
    let root = unescape(l.next()?);
    let mount_point = PathBuf::from(unescape(l.next()?));
    let _options = l.next()?;
    let optional = l.map(str::to_string).collect();
    let mut r = right.split(' ');
    Some(MountInfo {
        root,
        mount_point,
        optional,
        fstype: r.next()?.to_string(),
        source: unescape(r.next()?),
        super_options: r.next().unwrap_or("").to_string(),
    })
}

/// All well-formed lines of a mountinfo file.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// The mount that holds `path`: the last-mounted entry whose mount point is
/// the longest prefix of it.
pub(crate) fn mount_of<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts
        .iter()
        .rev()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
}

/// One line of /proc/self/cgroup: "id:controllers:path".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupLine {
    pub id: String,
    /// "cpu,cpuacct", "name=systemd", or "" for the unified hierarchy.
    pub controllers: String,
    pub path: String,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            Some(CgroupLine {
                id: p.next()?.to_string(),
                controllers: p.next()?.to_string(),
                path: p.next()?.to_string(),
            })
        })
        .collect()
}

/// A cgroup hierarchy mounted on the host, and the process's directory in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// "cgroup" (v1) or "cgroup2" (the unified one of a hybrid host).
    pub fstype: String,
    /// Where the host mounts it, e.g. /sys/fs/cgroup/cpu,cpuacct.
    pub mount_point: PathBuf,
    /// mount(2) data to mount it again: "cpu,cpuacct", "none,name=systemd".
    pub data: String,
    /// The controllers, for the co-mount symlinks ("cpu", "cpuacct").
    pub controllers: Vec<String>,
    /// The process's own cgroup directory on the host.
    pub own_dir: PathBuf,
}

/// Options of a v1 cgroup mount that are not controllers.
fn is_controller(opt: &str) -> bool {
    !matches!(
        opt,
        "rw" | "ro" | "xattr" | "clone_children" | "noprefix" | "cpuset_v2_mode"
    ) && !opt.starts_with("release_agent=")
}

/// The host's cgroup hierarchies under /sys/fs/cgroup, matched with the
/// process's lines of /proc/self/cgroup.
pub(crate) fn cgroup_hierarchies(mounts: &[MountInfo], own: &[CgroupLine]) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        if !m.mount_point.starts_with("/sys/fs/cgroup")
            || !matches!(m.fstype.as_str(), "cgroup" | "cgroup2")
        {
            continue;
        }
        if out.iter().any(|h| h.mount_point == m.mount_point) {
            continue;
        }
        let controllers: Vec<String> = match m.fstype.as_str() {
            "cgroup" => m
                .super_options
                .split(',')
                .filter(|o| is_controller(o))
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let line = own.iter().find(|l| {
            if m.fstype == "cgroup2" {
                l.id == "0" && l.controllers.is_empty()
            } else {
                !l.controllers.is_empty()
                    && l.controllers
                        .split(',')
                        .all(|c| controllers.iter().any(|x| x == c))
            }
        });
        let own_dir = match line {
            Some(l) => join_cgroup_path(&m.mount_point, &m.root, &l.path),
            None => m.mount_point.clone(),
        };
        let data = if controllers.iter().any(|c| c.starts_with("name=")) {
            format!("none,{}", controllers.join(","))
        } else {
            controllers.join(",")
        };
        out.push(Hierarchy {
            fstype: m.fstype.clone(),
            mount_point: m.mount_point.clone(),
            data,
            controllers: controllers
                .into_iter()
                .filter(|c| !c.starts_with("name="))
                .collect(),
            own_dir,
        });
    }
    out
}

/// `mount_point` + (`path` relative to the mount's `root`).
fn join_cgroup_path(mount_point: &Path, root: &str, path: &str) -> PathBuf {
    let rel = Path::new(path)
        .strip_prefix(root)
        .unwrap_or(Path::new(path));
    let rel: PathBuf = rel
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    mount_point.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
90 22 0:50 / /srv/my\\040dir rw master:3 - tmpfs none rw
";

    const PROC_CGROUP: &str = "\
12:memory:/berth/c1
4:cpu,cpuacct:/berth/c1
1:name=systemd:/user.slice
0::/user.slice/session-1.scope
";

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_optional_fields() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 8);
        assert_eq!(m[7].mount_point, PathBuf::from("/srv/my dir"));
        assert_eq!(m[7].optional, vec!["master:3".to_string()]);
        assert!(!m[7].is_shared());
        assert!(m[0].is_shared());
        assert_eq!(m[3].fstype, "cgroup2");
        assert_eq!(m[5].super_options, "rw,cpu,cpuacct");
    }

    #[test]
    fn mount_of_picks_the_longest_prefix() {
        let m = parse_mountinfo(MOUNTINFO);
        let found =
            mount_of(&m, Path::new("/srv/my dir/bundle/rootfs")).map(|m| m.mount_point.clone());
        assert_eq!(found, Some(PathBuf::from("/srv/my dir")));
        let found = mount_of(&m, Path::new("/srv/my dirx")).map(|m| m.mount_point.clone());
        assert_eq!(found, Some(PathBuf::from("/")));
    }

    #[test]
    fn hierarchies_match_the_process_cgroups() {
        let h = cgroup_hierarchies(&parse_mountinfo(MOUNTINFO), &parse_proc_cgroup(PROC_CGROUP));
        let names: Vec<_> = h
            .iter()
            .map(|h| h.mount_point.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory"
            ]
        );
        assert_eq!(
            h[0].own_dir,
            PathBuf::from("/sys/fs/cgroup/unified/user.slice/session-1.scope")
        );
        assert_eq!(h[1].data, "none,name=systemd");
        assert!(h[1].controllers.is_empty());
        assert_eq!(h[2].data, "cpu,cpuacct");
        assert_eq!(h[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(
            h[2].own_dir,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/c1")
        );
        assert_eq!(
            h[3].own_dir,
            PathBuf::from("/sys/fs/cgroup/memory/berth/c1")
        );
    }

    #[test]
    fn cgroup_path_is_taken_relative_to_the_mount_root() {
        assert_eq!(
            join_cgroup_path(Path::new("/sys/fs/cgroup/memory"), "/berth", "/berth/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1")
        );
        assert_eq!(
            join_cgroup_path(Path::new("/sys/fs/cgroup/memory"), "/", "/../../etc"),
            PathBuf::from("/sys/fs/cgroup/memory/etc")
        );
    }
}
