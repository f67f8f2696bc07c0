//! cgroups: the container is placed in `linux.cgroupsPath`, its resource
//! limits reach the host's cgroup files, and delete removes the cgroup.

use std::fs;
use std::path::Path;

use serde_json::json;

use crate::harness::{assert_contains, Bundle};

fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Read a cgroup file for the container: v2 `<name2>` or v1 `<ctrl>/<name1>`.
fn cg_read(b: &Bundle, ctrl: &str, v1: &str, v2: &str) -> String {
    let p = if is_v2() {
        Path::new("/sys/fs/cgroup").join(&b.id).join(v2)
    } else {
        Path::new("/sys/fs/cgroup").join(ctrl).join(&b.id).join(v1)
    };
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn resources_are_applied_and_cgroup_removed_on_delete() {
    let mut b = Bundle::new();
    // Without a cgroup namespace /proc/self/cgroup shows the host path.
    b.remove_namespace("cgroup");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 50});
    b.config["linux"]["resources"]["cpu"] =
        json!({"shares": 512, "quota": 50000, "period": 100000});
    b.start_sleeper();

    let inside = b
        .rt(&["exec", &b.id, "cat", "/proc/self/cgroup"])
        .ok("exec cat /proc/self/cgroup");
    assert_contains(
        &inside.stdout,
        &b.cgroups_path(),
        "/proc/self/cgroup inside",
    );
    let host_view = fs::read_to_string(format!("/proc/{}/cgroup", b.pid())).unwrap();
    for line in host_view
        .lines()
        .filter(|l| l.contains("memory") || l.contains("pids") || l.starts_with("0::"))
    {
        assert!(
            line.ends_with(&b.cgroups_path()),
            "init not in {}: {line}",
            b.cgroups_path()
        );
    }

    assert_eq!(
        cg_read(&b, "memory", "memory.limit_in_bytes", "memory.max"),
        "67108864",
        "memory limit"
    );
    assert_eq!(
        cg_read(&b, "pids", "pids.max", "pids.max"),
        "50",
        "pids limit"
    );
    if is_v2() {
        assert_eq!(cg_read(&b, "cpu", "", "cpu.max"), "50000 100000", "cpu.max");
    } else {
        assert_eq!(cg_read(&b, "cpu", "cpu.shares", ""), "512", "cpu shares");
        assert_eq!(
            cg_read(&b, "cpu", "cpu.cfs_quota_us", ""),
            "50000",
            "cpu quota"
        );
        assert_eq!(
            cg_read(&b, "cpu", "cpu.cfs_period_us", ""),
            "100000",
            "cpu period"
        );
    }

    b.rt(&["delete", "--force", &b.id]).ok("delete --force");
    let left = b.leftover_cgroups();
    assert!(left.is_empty(), "cgroup dirs left after delete: {left:?}");
}

#[test]
fn pids_limit_is_enforced() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    b.sh("for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all-forked");
    let out = b.run();
    assert!(
        !out.stdout.contains("all-forked"),
        "8 background processes forked under pids.max=5: {out:?}"
    );
}

#[test]
fn cgroup_namespace_hides_the_host_path() {
    let mut b = Bundle::new();
    b.args(&["cat", "/proc/self/cgroup"]);
    let out = b.run().ok("run");
    assert!(
        !out.stdout.contains(&b.id),
        "cgroup ns shows host path:\n{}",
        out.stdout
    );
    assert_contains(&out.stdout, ":/", "/proc/self/cgroup in a cgroup ns");
}
