//! Root tests of the real syscalls. Each runs in a forked child that first
//! unshares its mount namespace and makes `/` rslave, so no mount reaches
//! the host; the mounts vanish with the child. The child reports through a
//! pipe. Without root the tests pass vacuously (and say so).

use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::*;
use crate::spec::{Linux, Mount, Root};

fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: needs root");
    }
    root
}

/// Runs `f` in a forked child inside new namespaces (`CLONE_NEWNS` plus
/// `extra`), with cwd `cwd`; returns the child's error.
fn in_child(
    extra: CloneFlags,
    cwd: &Path,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only runs `f` (plain syscalls and allocation, which
    // glibc keeps usable after fork) and leaves with _exit.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(r);
            let res = catch_unwind(AssertUnwindSafe(|| {
                unshare(CloneFlags::CLONE_NEWNS | extra).map_err(|e| format!("unshare: {e}"))?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_SLAVE | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| format!("make / rslave: {e}"))?;
                std::env::set_current_dir(cwd).map_err(|e| format!("chdir: {e}"))?;
                f()
            }))
            .unwrap_or_else(|_| Err("child panicked".to_string()));
            let msg = res.err().unwrap_or_default();
            let _ = nix::unistd::write(&w, msg.as_bytes());
            // SAFETY: _exit ends the forked child without running the test
            // harness's destructors or atexit handlers twice.
            unsafe { libc::_exit(if msg.is_empty() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) if msg.is_empty() => Ok(()),
                status => Err(format!("{msg} (child status {status:?})")),
            }
        }
    }
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// A host path under /tmp that nothing has created: the bait for escapes.
fn escape_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!(
        "/tmp/berth-escape-{}-{tag}-{n}",
        std::process::id()
    ))
}

/// Removes a bait directory (and an empty `x` a regression may have left
/// in it) even when the test fails.
struct Bait(PathBuf);

impl Drop for Bait {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.0.join("x"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A bundle in a tempdir: `rootfs/` with a marker file (and busybox, if the
/// host has the static one), plus host-side files to bind-mount.
struct Bundle {
    dir: tempfile::TempDir,
    token: String,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-rootfs-test")
            .tempdir()
            .expect("tempdir");
        let token = format!("berth-{}", dir.path().display());
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).expect("mkdir rootfs");
        std::fs::write(rootfs.join("marker"), &token).expect("write marker");
        if Path::new("/bin/busybox").exists() {
            let _ = std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"));
        }
        Bundle { dir, token }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

fn mnt(kind: &str, source: &str, dest: &str, opts: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        kind: Some(kind.into()),
        source: Some(source.into()),
        options: opts.iter().map(|s| s.to_string()).collect(),
        ..Mount::default()
    }
}

fn spec(mounts: Vec<Mount>, linux: Linux, readonly: bool) -> Spec {
    Spec {
        oci_version: "1.2.0".into(),
        root: Some(Root {
            path: "rootfs".into(),
            readonly,
        }),
        mounts,
        linux: Some(linux),
        ..Spec::default()
    }
}

fn no_host_mount_under(dir: &Path) -> Result<(), String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let dir = dir.to_string_lossy();
    check!(
        !info.contains(dir.as_ref()),
        "host mountinfo shows a mount under {dir}"
    );
    Ok(())
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn default_mounts() -> Vec<Mount> {
    vec![
        mnt("proc", "proc", "/proc", &[]),
        mnt(
            "tmpfs",
            "tmpfs",
            "/dev",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mnt(
            "devpts",
            "devpts",
            "/dev/pts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mnt(
            "tmpfs",
            "shm",
            "/dev/shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mnt(
            "mqueue",
            "mqueue",
            "/dev/mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mnt(
            "sysfs",
            "sysfs",
            "/sys",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mnt(
            "cgroup",
            "cgroup",
            "/sys/fs/cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

fn check_prepared(rootfs: &Path) -> Result<(), String> {
    check!(
        rootfs.join("proc/self/status").exists(),
        "proc is not mounted in the rootfs"
    );
    let null = std::fs::metadata(rootfs.join("dev/null")).map_err(|e| format!("dev/null: {e}"))?;
    check!(
        null.file_type().is_char_device(),
        "dev/null is not a char device"
    );
    check!(
        null.rdev() == libc::makedev(1, 3),
        "dev/null has rdev {:x}",
        null.rdev()
    );
    check!(
        null.permissions().mode() & 0o777 == 0o666,
        "dev/null mode {:o}",
        null.permissions().mode()
    );
    let ptmx = std::fs::read_link(rootfs.join("dev/ptmx")).map_err(|e| format!("dev/ptmx: {e}"))?;
    check!(
        ptmx == Path::new("pts/ptmx"),
        "dev/ptmx -> {}",
        ptmx.display()
    );
    let fd = std::fs::read_link(rootfs.join("dev/fd")).map_err(|e| format!("dev/fd: {e}"))?;
    check!(
        fd == Path::new("/proc/self/fd"),
        "dev/fd -> {}",
        fd.display()
    );
    check!(rootfs.join("dev/pts/ptmx").exists(), "devpts not mounted");
    check!(rootfs.join("sys/kernel").exists(), "sysfs not mounted");
    let cg = rootfs.join("sys/fs/cgroup");
    let entries = std::fs::read_dir(&cg)
        .map_err(|e| format!("{}: {e}", cg.display()))?
        .count();
    check!(entries > 0, "cgroup mount is empty");
    match std::fs::create_dir(cg.join("berth-should-fail")) {
        Err(e) if errno_of(&e) == libc::EROFS => Ok(()),
        other => Err(format!(
            "mkdir in the ro cgroup tmpfs: expected EROFS, got {other:?}"
        )),
    }
}

#[test]
fn setup_pivot_and_finalize_build_the_container_view() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/secret"), "secret").unwrap();
    std::fs::create_dir_all(rootfs.join("masked/dir")).unwrap();
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::create_dir_all(b.dir.path().join("hostdata")).unwrap();
    std::fs::write(b.dir.path().join("hostfile"), "from the host").unwrap();
    let mut mounts = default_mounts();
    mounts.push(mnt("bind", "hostdata", "/mnt/data", &["rbind", "ro"]));
    mounts.push(mnt(
        "none",
        "./hostfile",
        "/etc/hostfile",
        &["bind", "nosuid", "rprivate"],
    ));
    let mut linux = Linux {
        masked_paths: vec![
            "/etc/secret".into(),
            "/masked".into(),
            "/no/such/path".into(),
        ],
        readonly_paths: vec!["/data".into(), "/missing".into()],
        ..Linux::default()
    };
    linux
        .sysctl
        .insert("kernel.hostname".into(), "berth-sysctl".into());
    let spec = spec(mounts, linux, true);
    let token = b.token.clone();
    let res = in_child(CloneFlags::CLONE_NEWUTS, b.dir.path(), || {
        prepare(&spec, Path::new("rootfs"), &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        check_prepared(&rootfs)?;
        let file =
            std::fs::read_to_string(rootfs.join("etc/hostfile")).map_err(|e| e.to_string())?;
        check!(file == "from the host", "bind-mounted file has {file:?}");
        match std::fs::write(rootfs.join("mnt/data/x"), "x") {
            Err(e) if errno_of(&e) == libc::EROFS => {}
            other => {
                return Err(format!(
                    "write to ro bind mount: expected EROFS, got {other:?}"
                ))
            }
        }
        pivot(&rootfs, false).map_err(|e| format!("pivot: {e}"))?;
        let marker = std::fs::read_to_string("/marker").map_err(|e| format!("/marker: {e}"))?;
        check!(
            marker == token,
            "after pivot / is not the rootfs: /marker has {marker:?}"
        );
        check!(
            std::env::current_dir().ok() == Some(PathBuf::from("/")),
            "cwd is not /"
        );
        finalize(&spec).map_err(|e| format!("finalize: {e}"))?;
        let secret = std::fs::read_to_string("/etc/secret").map_err(|e| e.to_string())?;
        check!(secret.is_empty(), "masked file still reads {secret:?}");
        let listed = std::fs::read_dir("/masked")
            .map_err(|e| e.to_string())?
            .count();
        check!(listed == 0, "masked directory still lists {listed} entries");
        match std::fs::write("/data/x", "x") {
            Err(e) if errno_of(&e) == libc::EROFS => {}
            other => {
                return Err(format!(
                    "write to readonly path: expected EROFS, got {other:?}"
                ))
            }
        }
        match std::fs::write("/newfile", "x") {
            Err(e) if errno_of(&e) == libc::EROFS => {}
            other => {
                return Err(format!(
                    "write to read-only root: expected EROFS, got {other:?}"
                ))
            }
        }
        let host = nix::unistd::gethostname().map_err(|e| e.to_string())?;
        check!(
            host == "berth-sysctl",
            "sysctl kernel.hostname not applied: {host:?}"
        );
        Ok(())
    });
    assert_eq!(res, Ok(()));
    assert_eq!(no_host_mount_under(b.dir.path()), Ok(()));
}

#[test]
fn no_pivot_moves_the_rootfs_onto_slash() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let spec = spec(
        vec![mnt("tmpfs", "tmpfs", "/dev", &["mode=755"])],
        Linux::default(),
        false,
    );
    let token = b.token.clone();
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        prepare(&spec, &rootfs, &RootfsOptions::default()).map_err(|e| format!("prepare: {e}"))?;
        pivot(&rootfs, true).map_err(|e| format!("pivot: {e}"))?;
        let marker = std::fs::read_to_string("/marker").map_err(|e| format!("/marker: {e}"))?;
        check!(marker == token, "after chroot / is not the rootfs");
        check!(Path::new("/dev/null").exists(), "no /dev/null after chroot");
        Ok(())
    });
    assert_eq!(res, Ok(()));
}

#[test]
fn proc_symlink_to_a_host_path_is_refused() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let bait = escape_path("proc");
    symlink(&bait, rootfs.join("proc")).unwrap();
    let spec = spec(
        vec![mnt("proc", "proc", "/proc", &[])],
        Linux::default(),
        false,
    );
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        match prepare(&spec, &rootfs, &RootfsOptions::default()) {
            Ok(()) => Err("mounting proc through a symlink succeeded".to_string()),
            Err(e) => {
                let msg = e.to_string();
                check!(
                    msg.contains("mounts[0] (proc on /proc)") && msg.contains("symlink"),
                    "error was {msg:?}"
                );
                Ok(())
            }
        }
    });
    assert_eq!(res, Ok(()));
    assert!(!bait.exists(), "{} was created on the host", bait.display());
    assert!(
        !rootfs.join(bait.strip_prefix("/").unwrap()).exists(),
        "bait created in the rootfs"
    );
}

#[test]
fn dev_symlink_to_a_missing_host_path_is_created_inside_the_rootfs() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let bait = escape_path("dev");
    symlink(&bait, rootfs.join("dev")).unwrap();
    let spec = spec(
        vec![mnt("tmpfs", "tmpfs", "/dev", &["mode=755"])],
        Linux::default(),
        false,
    );
    let inside = rootfs.join(bait.strip_prefix("/").unwrap());
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        prepare(&spec, &rootfs, &RootfsOptions::default()).map_err(|e| format!("prepare: {e}"))?;
        let null = std::fs::metadata(inside.join("null"))
            .map_err(|e| format!("{}: {e}", inside.display()))?;
        check!(
            null.file_type().is_char_device(),
            "/dev/null is not a device"
        );
        check!(!bait.exists(), "{} exists on the host", bait.display());
        Ok(())
    });
    assert_eq!(res, Ok(()));
    assert!(!bait.exists(), "{} was created on the host", bait.display());
}

#[test]
fn destination_through_a_dotdot_symlink_stays_in_the_root() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let bait = escape_path("etc");
    std::fs::create_dir(&bait).unwrap();
    let _guard = Bait(bait.clone());
    let up = "../".repeat(rootfs.components().count() + 2);
    symlink(format!("{up}{}", bait.display()), rootfs.join("etc")).unwrap();
    let spec = spec(
        vec![mnt("tmpfs", "tmpfs", "/etc/x", &[])],
        Linux::default(),
        false,
    );
    let inside = rootfs.join(bait.strip_prefix("/").unwrap());
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        prepare(&spec, &rootfs, &RootfsOptions::default()).map_err(|e| format!("prepare: {e}"))?;
        let host_entries = std::fs::read_dir(&bait).map_err(|e| e.to_string())?.count();
        check!(
            host_entries == 0,
            "the host directory {} got {host_entries} entries",
            bait.display()
        );
        let x = std::fs::metadata(inside.join("x"))
            .map_err(|e| format!("{}/x: {e}", inside.display()))?;
        let parent = std::fs::metadata(&inside).map_err(|e| e.to_string())?;
        check!(
            x.dev() != parent.dev(),
            "{}/x is not a mount point",
            inside.display()
        );
        Ok(())
    });
    assert_eq!(res, Ok(()));
}

#[test]
fn symlink_loop_is_refused_naming_the_destination() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    symlink("../../../../etc", rootfs.join("etc")).unwrap();
    // Named uniquely so that a regression's leftover on the host is ours.
    let name = escape_path("loop")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dest = format!("/etc/{name}");
    let _guard = Bait(PathBuf::from(&dest));
    let spec = spec(
        vec![mnt("tmpfs", "tmpfs", &dest, &[])],
        Linux::default(),
        false,
    );
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        match prepare(&spec, &rootfs, &RootfsOptions::default()) {
            Ok(()) => Err("mount through a symlink loop succeeded".to_string()),
            Err(e) => {
                let msg = e.to_string();
                let want = format!("mounts[0] (tmpfs on {dest})");
                check!(
                    msg.contains(&want) && msg.contains("ELOOP"),
                    "error was {msg:?}"
                );
                Ok(())
            }
        }
    });
    assert_eq!(res, Ok(()));
    assert!(!Path::new(&dest).exists(), "{dest} was created on the host");
}

#[test]
fn file_in_the_middle_of_a_destination_is_refused() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let spec = spec(
        vec![mnt("tmpfs", "tmpfs", "/marker/x", &[])],
        Linux::default(),
        false,
    );
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        match prepare(&spec, &rootfs, &RootfsOptions::default()) {
            Ok(()) => Err("mount below a regular file succeeded".to_string()),
            Err(e) => {
                let msg = e.to_string();
                let want = "mounts[0] (tmpfs on /marker/x): resolve destination: ENOTDIR";
                check!(msg.contains(want), "error was {msg:?}");
                Ok(())
            }
        }
    });
    assert_eq!(res, Ok(()));
}

#[test]
fn cgroup_namespace_mounts_fresh_hierarchies() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let mounts = vec![
        mnt("sysfs", "sysfs", "/sys", &["nosuid", "noexec", "nodev"]),
        mnt(
            "cgroup",
            "cgroup",
            "/sys/fs/cgroup",
            &["nosuid", "noexec", "nodev", "relatime"],
        ),
    ];
    let spec = spec(mounts, Linux::default(), false);
    let opts = RootfsOptions {
        new_cgroup_namespace: true,
        ..RootfsOptions::default()
    };
    let res = in_child(CloneFlags::CLONE_NEWCGROUP, b.dir.path(), || {
        prepare(&spec, &rootfs, &opts).map_err(|e| format!("prepare: {e}"))?;
        let cg = rootfs.join("sys/fs/cgroup");
        let names: Vec<String> = std::fs::read_dir(&cg)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        check!(!names.is_empty(), "no hierarchies under {}", cg.display());
        for n in &names {
            let p = cg.join(n);
            check!(
                p.join("cgroup.procs").exists(),
                "{} has no cgroup.procs",
                p.display()
            );
        }
        Ok(())
    });
    assert_eq!(res, Ok(()));
}

#[test]
fn user_namespace_devices_are_bind_mounts_of_the_host_nodes() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let rootfs = b.rootfs();
    let spec = spec(
        vec![mnt("tmpfs", "tmpfs", "/dev", &["mode=755"])],
        Linux::default(),
        false,
    );
    let opts = RootfsOptions {
        in_user_namespace: true,
        ..RootfsOptions::default()
    };
    let res = in_child(CloneFlags::empty(), b.dir.path(), || {
        prepare(&spec, &rootfs, &opts).map_err(|e| format!("prepare: {e}"))?;
        let null =
            std::fs::metadata(rootfs.join("dev/null")).map_err(|e| format!("dev/null: {e}"))?;
        let dev = std::fs::metadata(rootfs.join("dev")).map_err(|e| e.to_string())?;
        check!(
            null.file_type().is_char_device(),
            "dev/null is not the host's device node"
        );
        check!(
            null.rdev() == libc::makedev(1, 3),
            "dev/null has rdev {:x}",
            null.rdev()
        );
        check!(null.dev() != dev.dev(), "dev/null is not a bind mount");
        Ok(())
    });
    assert_eq!(res, Ok(()));
}
