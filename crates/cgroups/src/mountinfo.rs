//! Discovering the cgroup hierarchies of the host.
//!
//! The layout is read from `/proc/self/mountinfo` (which filesystems of type
//! `cgroup`/`cgroup2` are mounted where, and which controllers each v1 mount
//! carries in its super options) and `/proc/self/cgroup` (where this process
//! sits in each hierarchy, for relative cgroups paths). Nothing is hard-coded:
//! `cpu` and `cpuacct` may be one mount (`cpu,cpuacct`, most distributions)
//! or two (this project's CI host).

use std::path::{Path, PathBuf};

use crate::CgroupError;

/// Controllers a v1 mount can carry; other super options (`rw`,
/// `clone_children`, `release_agent=...`) are not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// The cgroup that is the root of this mount (mountinfo field 4), `/`
    /// unless a sub-tree was bind-mounted.
    pub mount_root: PathBuf,
    /// v1: controllers plus `name=...` entries; v2: empty.
    pub controllers: Vec<String>,
    /// The process's own cgroup in this hierarchy, from /proc/self/cgroup,
    /// relative to the hierarchy root (not the mount root).
    pub own_cgroup: Option<PathBuf>,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The directory of cgroup `path` (absolute = from the hierarchy root,
    /// relative = below the process's own cgroup).
    pub fn dir_of(&self, path: &Path) -> Result<PathBuf, CgroupError> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            let own = self
                .own_cgroup
                .clone()
                .unwrap_or_else(|| PathBuf::from("/"));
            own.join(path)
        };
        // A mount of a sub-tree shows cgroup paths below its mount root.
        let rel = match abs.strip_prefix(&self.mount_root) {
            Ok(r) => r.to_path_buf(),
            Err(_) if !path.is_absolute() => {
                return Err(CgroupError::InvalidPath {
                    path: abs.display().to_string(),
                    reason: format!(
                        "own cgroup is outside the mount root {} of {}",
                        self.mount_root.display(),
                        self.mount_point.display()
                    ),
                })
            }
            // runc's behaviour for absolute paths: join onto the mount point.
            Err(_) => abs.strip_prefix("/").unwrap_or(&abs).to_path_buf(),
        };
        Ok(self.mount_point.join(rel))
    }
}

/// All hierarchies of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    pub v1: Vec<Hierarchy>,
    pub unified: Option<Hierarchy>,
}

/// Parse `/proc/self/mountinfo` and `/proc/self/cgroup` text.
pub(crate) fn parse_layout(mountinfo: &str, self_cgroup: &str) -> Layout {
    let mut layout = Layout::default();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mount_root = PathBuf::from(unescape(pre[3]));
        let mount_point = PathBuf::from(unescape(pre[4]));
        match post[0] {
            // The first cgroup2 mount wins (later ones are usually bind
            // mounts of the same hierarchy into containers).
            "cgroup2" if layout.unified.is_none() => {
                layout.unified = Some(Hierarchy {
                    mount_point,
                    mount_root,
                    controllers: Vec::new(),
                    own_cgroup: None,
                });
            }
            "cgroup" => {
                let mut controllers: Vec<String> = post[2]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                controllers.sort();
                if controllers.is_empty() {
                    continue;
                }
                if layout.v1.iter().any(|h| h.controllers == controllers) {
                    continue;
                }
                layout.v1.push(Hierarchy {
                    mount_point,
                    mount_root,
                    controllers,
                    own_cgroup: None,
                });
            }
            _ => {}
        }
    }
    for line in self_cgroup.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            if let Some(u) = layout.unified.as_mut() {
                u.own_cgroup = Some(PathBuf::from(path));
            }
            continue;
        }
        let mut set: Vec<&str> = ctrls.split(',').collect();
        set.sort_unstable();
        if let Some(h) = layout.v1.iter_mut().find(|h| h.controllers == set) {
            h.own_cgroup = Some(PathBuf::from(path));
        }
    }
    layout
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Build a layout from a fake tree: each sub-directory of `root` named by
/// controllers (`memory`, `cpu,cpuacct`, `systemd` for `name=systemd`) is a
/// v1 hierarchy, `unified` a cgroup2 one. A root with no such directories is
/// a pure v2 tree.
pub(crate) fn fake_layout(root: &Path, v2: bool) -> Result<Layout, CgroupError> {
    if v2 {
        return Ok(Layout {
            v1: Vec::new(),
            unified: Some(Hierarchy {
                mount_point: root.to_path_buf(),
                mount_root: PathBuf::from("/"),
                controllers: Vec::new(),
                own_cgroup: None,
            }),
        });
    }
    let mut layout = Layout::default();
    let rd = std::fs::read_dir(root).map_err(|source| CgroupError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let h = Hierarchy {
            mount_point: root.join(&name),
            mount_root: PathBuf::from("/"),
            controllers: Vec::new(),
            own_cgroup: None,
        };
        if name == "unified" {
            layout.unified = Some(h);
        } else if name == "systemd" {
            layout.v1.push(Hierarchy {
                controllers: vec!["name=systemd".into()],
                ..h
            });
        } else {
            let mut c: Vec<String> = name.split(',').map(str::to_string).collect();
            if c.iter().all(|c| V1_CONTROLLERS.contains(&c.as_str())) {
                c.sort();
                layout.v1.push(Hierarchy {
                    controllers: c,
                    ..h
                });
            }
        }
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const SELF: &str = "9:name=systemd:/\n4:memory:/process_api/b1\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_separate_cpu_and_cpuacct() {
        let l = parse_layout(HYBRID, SELF);
        let names: Vec<_> = l.v1.iter().map(|h| h.controllers.join(",")).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory", "name=systemd"]);
        let mem = &l.v1[2];
        assert_eq!(mem.mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(mem.own_cgroup, Some(PathBuf::from("/process_api/b1")));
        assert_eq!(
            mem.dir_of(Path::new("x")).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/b1/x")
        );
        assert_eq!(
            mem.dir_of(Path::new("/x")).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/x")
        );
        let u = l.unified.as_ref().unwrap();
        assert_eq!(u.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn comounted_cpu_cpuacct_and_bind_mounted_subtree() {
        let mi = "\
1 0 0:1 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu
2 0 0:2 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let l = parse_layout(mi, "3:cpu,cpuacct:/docker/abc\n2:memory:/docker/abc\n");
        assert_eq!(l.v1[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(
            l.v1[0].dir_of(Path::new("c1")).unwrap(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1")
        );
        assert!(l.unified.is_none());
    }

    #[test]
    fn pure_v2_and_escaped_mount_points() {
        let mi = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                  30 23 0:27 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
        let l = parse_layout(mi, "0::/user.slice/x.scope\n");
        assert!(l.v1.is_empty());
        let u = l.unified.unwrap();
        assert_eq!(u.mount_point, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(
            u.dir_of(Path::new("c")).unwrap(),
            PathBuf::from("/sys/fs/cgroup/user.slice/x.scope/c")
        );
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
    }
}
