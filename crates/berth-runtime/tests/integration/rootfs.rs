//! Rootfs and mounts: the container sees its rootfs as `/` with the
//! standard mounts, nothing of the host, and mount destinations are
//! resolved inside the rootfs even through hostile symlinks.

use std::fs;
use std::os::unix::fs::symlink;

use serde_json::json;

use crate::harness::{assert_contains, host_mounts_containing, Bundle};

/// (mount point, fs type) pairs from a mountinfo text.
fn mounts(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((f.get(4)?.to_string(), f.get(sep + 1)?.to_string()))
        })
        .collect()
}

#[test]
fn standard_mounts_are_present() {
    let mut b = Bundle::new();
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = b.run().ok("run");
    let got = mounts(&out.stdout);
    for (mp, ty) in [
        ("/", ""),
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert!(
            got.iter()
                .any(|(m, t)| m == mp && (ty.is_empty() || t == ty)),
            "expected {mp} ({ty}) in the container's mount table, got:\n{}",
            out.stdout
        );
    }
}

#[test]
fn root_is_the_rootfs_and_host_files_are_unreachable() {
    let mut b = Bundle::new();
    fs::write(b.rootfs().join("marker"), "in-rootfs\n").unwrap();
    let host = b.host_dir();
    fs::write(host.join("host-marker"), "on-host\n").unwrap();
    let host_file = host.join("host-marker");
    b.sh(&format!(
        "cat /marker; test -e {} && echo host-visible || echo host-hidden",
        host_file.display()
    ));
    let out = b.run().ok("run");
    assert_contains(&out.stdout, "in-rootfs", "rootfs marker at /marker");
    assert_contains(&out.stdout, "host-hidden", "host marker file");
}

#[test]
fn readonly_root_refuses_writes() {
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(true);
    b.sh("touch /x 2>/dev/null && echo wrote || echo refused");
    let out = b.run().ok("run");
    assert_eq!(out.stdout.trim(), "refused", "touch /x on a readonly root");
    assert!(
        !b.rootfs().join("x").exists(),
        "file created in readonly rootfs"
    );
}

#[test]
fn tmpfs_mount_honours_mode_and_size() {
    let mut b = Bundle::new();
    b.add_mount(
        json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["mode=1777", "size=1m"]}),
    );
    b.sh("stat -c %a /mnt/t; grep ' /mnt/t ' /proc/self/mountinfo");
    let out = b.run().ok("run");
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("1777"),
        "mode of the tmpfs: {}",
        out.stdout
    );
    let mi = lines.next().unwrap_or("");
    assert_contains(mi, "tmpfs", "mountinfo of /mnt/t");
    assert_contains(mi, "size=1024k", "mountinfo of /mnt/t");
}

#[test]
fn readonly_bind_mount_reads_but_refuses_writes() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    fs::write(host.join("data"), "host-data\n").unwrap();
    b.bind(&host, "/data", true);
    b.sh("cat /data/data; touch /data/new 2>/dev/null && echo wrote || echo refused");
    let out = b.run().ok("run");
    assert_contains(&out.stdout, "host-data", "read through ro bind");
    assert_contains(&out.stdout, "refused", "write through ro bind");
    assert!(
        !host.join("new").exists(),
        "write reached the host through a ro bind"
    );
}

#[test]
fn read_write_bind_mount_writes_reach_the_host() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    b.bind(&host, "/data", false);
    b.sh("echo from-container > /data/new");
    b.run().ok("run");
    let got = fs::read_to_string(host.join("new")).unwrap_or_default();
    assert_eq!(got, "from-container\n", "file written through rw bind");
}

#[test]
fn mount_destination_through_symlink_stays_in_rootfs() {
    let mut b = Bundle::new();
    let outside = b.host_dir();
    symlink(&outside, b.rootfs().join("escape")).unwrap();
    b.add_mount(
        json!({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=1m"]}),
    );
    b.args(&["true"]);
    let out = b.run();
    let leaked: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
    assert!(
        leaked.is_empty(),
        "runtime created {:?} in the host dir the symlink points to ({out:?})",
        leaked.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
    let mounts = host_mounts_containing(outside.to_str().unwrap());
    assert!(
        mounts.is_empty(),
        "host mounts under {}: {mounts:?}",
        outside.display()
    );
}

#[test]
fn proc_symlink_does_not_mount_on_the_host() {
    let mut b = Bundle::new();
    let outside = b.host_dir();
    fs::remove_dir(b.rootfs().join("proc")).unwrap();
    symlink(&outside, b.rootfs().join("proc")).unwrap();
    b.args(&["true"]);
    let out = b.run();
    let mounts = host_mounts_containing(outside.to_str().unwrap());
    assert!(
        mounts.is_empty(),
        "proc mounted on the host's {}: {mounts:?} ({out:?})",
        outside.display()
    );
    let entries = fs::read_dir(&outside).unwrap().count();
    assert_eq!(entries, 0, "host dir behind /proc symlink was written to");
}
