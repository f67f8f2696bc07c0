//! Namespaces: the container gets its own pid/uts/ipc/net/mnt/cgroup
//! namespaces, can join an existing one by path, and can run in a user
//! namespace with uid/gid mappings.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{assert_contains, host_ns, Bundle};

#[test]
fn container_process_is_pid_1() {
    let mut b = Bundle::new();
    b.sh("echo $$");
    let out = b.run().ok("run");
    assert_eq!(out.stdout.trim(), "1", "$$ inside the container");
}

#[test]
fn host_processes_are_invisible() {
    let mut b = Bundle::new();
    b.sh("for p in /proc/[0-9]*; do echo ${p#/proc/}; done");
    let out = b.run().ok("run");
    let pids: Vec<u32> = out
        .stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        !pids.is_empty() && pids.len() <= 3 && pids.iter().all(|&p| p < 20),
        "expected only the container's few low pids in /proc, got {pids:?}"
    );
    assert!(
        !pids.contains(&std::process::id()),
        "test process visible in container"
    );
}

#[test]
fn hostname_is_set() {
    let mut b = Bundle::new();
    b.config["hostname"] = json!("berth-box");
    b.args(&["hostname"]);
    let out = b.run().ok("run");
    assert_eq!(
        out.stdout.trim(),
        "berth-box",
        "hostname inside the container"
    );
}

fn container_ns(b: &mut Bundle) -> HashMap<String, String> {
    b.sh("for n in uts ipc net mnt pid cgroup; do echo $n $(readlink /proc/self/ns/$n); done");
    let out = b.run().ok("run");
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn namespaces_differ_from_the_host() {
    let mut b = Bundle::new();
    let inside = container_ns(&mut b);
    for kind in ["uts", "ipc", "net", "mnt", "pid", "cgroup"] {
        let host = host_ns(kind);
        let got = inside.get(kind).cloned().unwrap_or_default();
        assert!(
            got.starts_with(kind),
            "no {kind} ns link inside: {inside:?}"
        );
        assert_ne!(
            got, host,
            "{kind} namespace: expected a new one, got the host's"
        );
    }
}

#[test]
fn namespace_not_listed_is_shared_with_the_host() {
    let mut b = Bundle::new();
    b.remove_namespace("network").remove_namespace("uts");
    // A hostname needs a private UTS namespace.
    b.config.as_object_mut().unwrap().remove("hostname");
    let inside = container_ns(&mut b);
    assert_eq!(
        inside.get("net"),
        Some(&host_ns("net")),
        "net ns not shared"
    );
    assert_eq!(
        inside.get("uts"),
        Some(&host_ns("uts")),
        "uts ns not shared"
    );
    assert_ne!(inside.get("pid"), Some(&host_ns("pid")), "pid ns shared");
}

#[test]
fn joins_an_existing_network_namespace_by_path() {
    let mut b = Bundle::new();
    let holder = Command::new("unshare")
        .args(["--net", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn unshare --net sleep");
    let pid = holder.id();
    b.helpers.push(holder);
    let ns_path = format!("/proc/{pid}/ns/net");
    let deadline = Instant::now() + Duration::from_secs(5);
    let target = loop {
        let t = fs::read_link(&ns_path).map(|p| p.to_string_lossy().into_owned());
        if let Ok(t) = t {
            if t != host_ns("net") {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "unshare --net never entered a new netns"
        );
        thread::sleep(Duration::from_millis(20));
    };
    b.remove_namespace("network");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network", "path": ns_path}));
    let inside = container_ns(&mut b);
    assert_eq!(
        inside.get("net"),
        Some(&target),
        "joined netns: expected {target}"
    );
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_symlink() || !path.is_dir() {
        return;
    }
    for e in fs::read_dir(path).unwrap() {
        chown_tree(&e.unwrap().path(), uid, gid);
    }
}

#[test]
fn user_namespace_maps_root_to_host_uid() {
    let mut b = Bundle::new();
    chown_tree(&b.rootfs(), 100000, 100000);
    let host = b.host_dir();
    b.bind(&host, "/out", false);
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /out/made-by-root");
    let out = b.run().ok("run in user namespace");
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.len() >= 3, "unexpected output: {}", out.stdout);
    assert_eq!(
        lines[0],
        ["0", "100000", "65536"],
        "uid_map: {}",
        out.stdout
    );
    assert_eq!(
        lines[1],
        ["0", "100000", "65536"],
        "gid_map: {}",
        out.stdout
    );
    assert_eq!(lines[2], ["0"], "id -u inside: {}", out.stdout);
    let meta = fs::metadata(host.join("made-by-root")).expect("file created by container root");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (100000, 100000),
        "owner on the host of a file made by container root"
    );
    assert_contains(&out.stdout, "100000", "uid_map");
    let _ = fs::set_permissions(&host, fs::Permissions::from_mode(0o777));
}
