//! Unit tests of both drivers against fake cgroup trees in a temp dir:
//! which files get which values, in which order. No root needed.

use std::collections::BTreeMap;
use std::fs as stdfs;
use std::path::{Path, PathBuf};

use crate::fs::{self as cfs, FsCheck, JOURNAL};
use crate::*;

fn journal_take() -> Vec<(PathBuf, String)> {
    JOURNAL.with(|j| std::mem::take(&mut *j.borrow_mut()))
}

/// The writes of the journal below `dir`, as ("file", "value").
fn writes_in(j: &[(PathBuf, String)], dir: &Path) -> Vec<(String, String)> {
    j.iter()
        .filter(|(p, _)| p.parent() == Some(dir))
        .map(|(p, v)| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), v.clone())
        })
        .collect()
}

fn last(path: &Path) -> String {
    let s = stdfs::read_to_string(path)
        .unwrap_or_else(|e| panic!("expected {} to be written: {e}", path.display()));
    crate::last_line(&s).to_string()
}

fn touch(path: &Path, content: &str) {
    stdfs::write(path, content).expect("seed fake file");
}

fn v1_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    for d in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified",
    ] {
        stdfs::create_dir(t.path().join(d)).expect("mkdir");
    }
    touch(&t.path().join("cpuset/cpuset.cpus"), "0-3\n");
    touch(&t.path().join("cpuset/cpuset.mems"), "0\n");
    t
}

fn v2_tree(root_controllers: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    touch(&t.path().join("cgroup.controllers"), root_controllers);
    t
}

fn open_v1(t: &tempfile::TempDir, p: &str) -> Cgroup {
    Cgroup::open_with_root(t.path(), CgroupVersion::V1, Path::new(p)).expect("open fake v1")
}

fn open_v2(t: &tempfile::TempDir, p: &str) -> Cgroup {
    Cgroup::open_with_root(t.path(), CgroupVersion::V2, Path::new(p)).expect("open fake v2")
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

// ---- v1 -----------------------------------------------------------------

#[test]
fn v1_create_makes_every_hierarchy_and_copies_cpuset() {
    let t = v1_tree();
    let cg = open_v1(&t, "/a/b");
    assert_eq!(cg.version(), CgroupVersion::V1);
    cg.create().unwrap();
    for h in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        "unified",
    ] {
        assert!(t.path().join(h).join("a/b").is_dir(), "missing {h}/a/b");
    }
    for d in ["cpuset/a", "cpuset/a/b"] {
        assert_eq!(last(&t.path().join(d).join("cpuset.cpus")), "0-3", "{d}");
        assert_eq!(last(&t.path().join(d).join("cpuset.mems")), "0", "{d}");
    }
    assert!(cg.exists());
}

#[test]
fn v1_memory_cpu_pids_files() {
    let t = v1_tree();
    let cg = open_v1(&t, "/c");
    cg.create().unwrap();
    cg.apply(&res(r#"{
        "memory": {"limit": 104857600, "reservation": 52428800, "swappiness": 10,
                   "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0",
                "realtimePeriod": 1000000, "realtimeRuntime": 950000},
        "pids": {"limit": 10}
    }"#))
        .unwrap();
    let p = t.path();
    assert_eq!(last(&p.join("memory/c/memory.limit_in_bytes")), "104857600");
    assert_eq!(
        last(&p.join("memory/c/memory.soft_limit_in_bytes")),
        "52428800"
    );
    assert_eq!(last(&p.join("memory/c/memory.swappiness")), "10");
    assert_eq!(last(&p.join("memory/c/memory.oom_control")), "1");
    assert!(!p.join("memory/c/memory.memsw.limit_in_bytes").exists());
    assert_eq!(last(&p.join("cpu/c/cpu.shares")), "512");
    assert_eq!(last(&p.join("cpu/c/cpu.cfs_quota_us")), "50000");
    assert_eq!(last(&p.join("cpu/c/cpu.cfs_period_us")), "100000");
    assert_eq!(last(&p.join("cpu/c/cpu.rt_period_us")), "1000000");
    assert_eq!(last(&p.join("cpu/c/cpu.rt_runtime_us")), "950000");
    assert_eq!(last(&p.join("cpuset/c/cpuset.cpus")), "0-1");
    assert_eq!(last(&p.join("cpuset/c/cpuset.mems")), "0");
    assert_eq!(last(&p.join("pids/c/pids.max")), "10");

    cg.apply(&res(r#"{"pids": {"limit": 0}, "cpu": {"quota": -1}}"#))
        .unwrap();
    assert_eq!(last(&p.join("pids/c/pids.max")), "max");
    assert_eq!(last(&p.join("cpu/c/cpu.cfs_quota_us")), "-1");
}

#[test]
fn v1_memsw_ordering_raising_and_lowering() {
    let t = v1_tree();
    let cg = open_v1(&t, "/m");
    cg.create().unwrap();
    let d = t.path().join("memory/m");
    touch(&d.join("memory.memsw.limit_in_bytes"), "");
    // Raising: the current limit (1000) is below the new memsw -> memsw first.
    touch(&d.join("memory.limit_in_bytes"), "1000\n");
    journal_take();
    cg.apply(&res(r#"{"memory": {"limit": 2000, "swap": 4000}}"#))
        .unwrap();
    assert_eq!(
        writes_in(&journal_take(), &d),
        [
            ("memory.memsw.limit_in_bytes".into(), "4000".into()),
            ("memory.limit_in_bytes".into(), "2000".into())
        ]
    );
    // Lowering below the current limit: limit first.
    touch(&d.join("memory.limit_in_bytes"), "8000\n");
    cg.apply(&res(r#"{"memory": {"limit": 2000, "swap": 4000}}"#))
        .unwrap();
    assert_eq!(
        writes_in(&journal_take(), &d),
        [
            ("memory.limit_in_bytes".into(), "2000".into()),
            ("memory.memsw.limit_in_bytes".into(), "4000".into())
        ]
    );
    // Unlimited memory implies unlimited memsw, written first.
    cg.apply(&res(r#"{"memory": {"limit": -1}}"#)).unwrap();
    assert_eq!(
        writes_in(&journal_take(), &d),
        [
            ("memory.memsw.limit_in_bytes".into(), "-1".into()),
            ("memory.limit_in_bytes".into(), "-1".into())
        ]
    );
    let e = cg
        .apply(&res(r#"{"memory": {"limit": 2000, "swap": 1000}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("1000"), "{e}");
}

#[test]
fn v1_swap_without_memsw_is_a_clear_error() {
    let t = v1_tree();
    let cg = open_v1(&t, "/s");
    cg.create().unwrap();
    let e = cg
        .apply(&res(r#"{"memory": {"limit": 1000, "swap": 2000}}"#))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("memory.memsw.limit_in_bytes"), "{msg}");
    // Unlimited swap needs no memsw file.
    cg.apply(&res(r#"{"memory": {"limit": -1, "swap": -1}}"#))
        .unwrap();
}

#[test]
fn v1_devices_deny_all_then_rules_in_order() {
    let t = v1_tree();
    let cg = open_v1(&t, "/d");
    cg.create().unwrap();
    journal_take();
    cg.apply(&res(r#"{"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rw"},
        {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "m"}
    ]}"#))
        .unwrap();
    let d = t.path().join("devices/d");
    assert_eq!(
        writes_in(&journal_take(), &d),
        [
            ("devices.deny".into(), "a".into()),
            ("devices.deny".into(), "a *:* rwm".into()),
            ("devices.allow".into(), "c 1:3 rwm".into()),
            ("devices.allow".into(), "c 136:* rw".into()),
            ("devices.deny".into(), "b 8:0 m".into()),
        ]
    );
    // A bad rule is rejected before anything is written.
    let e = cg
        .apply(&res(r#"{"devices": [{"allow": true, "type": "x"}]}"#))
        .unwrap_err();
    assert!(e.to_string().contains("\"x\""), "{e}");
    assert!(journal_take().is_empty());
}

#[test]
fn v1_missing_controller_is_named() {
    let t = tempfile::tempdir().unwrap();
    stdfs::create_dir(t.path().join("memory")).unwrap();
    let cg = open_v1(&t, "/x");
    cg.create().unwrap();
    let e = cg.apply(&res(r#"{"pids": {"limit": 5}}"#)).unwrap_err();
    assert!(
        matches!(e, CgroupError::ControllerNotMounted { ref controller, .. } if controller == "pids"),
        "{e}"
    );
    assert!(e.to_string().contains("pids"), "{e}");
    let e = cg.freeze().unwrap_err();
    assert!(e.to_string().contains("freezer"), "{e}");
    let e = cg
        .apply(&res(r#"{"unified": {"memory.high": "1"}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("unified"), "{e}");
}

#[test]
fn v1_comounted_cpu_cpuacct() {
    let t = tempfile::tempdir().unwrap();
    stdfs::create_dir(t.path().join("cpu,cpuacct")).unwrap();
    let cg = open_v1(&t, "/x");
    cg.create().unwrap();
    cg.apply(&res(r#"{"cpu": {"shares": 100}}"#)).unwrap();
    assert_eq!(last(&t.path().join("cpu,cpuacct/x/cpu.shares")), "100");
}

#[test]
fn v1_blkio_hugetlb_via_hybrid_unified() {
    let t = v1_tree();
    touch(&t.path().join("unified/cgroup.controllers"), "hugetlb\n");
    let cg = open_v1(&t, "/h");
    cg.create().unwrap();
    cg.apply(&res(r#"{
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}
    }"#))
    .unwrap();
    let p = t.path();
    assert_eq!(last(&p.join("unified/cgroup.subtree_control")), "+hugetlb");
    assert_eq!(last(&p.join("unified/h/hugetlb.2MB.max")), "4194304");
    assert_eq!(last(&p.join("blkio/h/blkio.weight")), "500");
    assert_eq!(
        last(&p.join("blkio/h/blkio.throttle.read_bps_device")),
        "8:0 1048576"
    );
    let e = cg
        .apply(&res(
            r#"{"hugepageLimits": [{"pageSize": "../x", "limit": 1}]}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("../x"), "{e}");
}

#[test]
fn v1_add_task_freeze_delete() {
    let t = v1_tree();
    let cg = open_v1(&t, "rel/x");
    cg.create().unwrap();
    cg.add_task(4242).unwrap();
    for h in ["cpu", "memory", "systemd", "unified", "freezer"] {
        assert_eq!(
            last(&t.path().join(h).join("rel/x/cgroup.procs")),
            "4242",
            "{h}"
        );
    }
    assert_eq!(cg.procs().unwrap(), [4242]);
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    assert!(cg.add_task(0).is_err());
    cg.delete().unwrap();
    assert!(!cg.exists());
    assert!(t.path().join("memory/rel").is_dir(), "parents are kept");
    cg.delete().unwrap(); // missing is fine
}

// ---- v2 -----------------------------------------------------------------

#[test]
fn v2_create_enables_controllers_in_ancestors() {
    let t = v2_tree("cpuset cpu io memory pids\n");
    stdfs::create_dir(t.path().join("a")).unwrap();
    touch(
        &t.path().join("a/cgroup.controllers"),
        "cpu io memory pids\n",
    );
    touch(&t.path().join("a/cgroup.subtree_control"), "cpu memory\n");
    let cg = open_v2(&t, "/a/b/c");
    assert_eq!(cg.version(), CgroupVersion::V2);
    journal_take();
    cg.create().unwrap();
    assert!(t.path().join("a/b/c").is_dir());
    let j = journal_take();
    assert_eq!(
        writes_in(&j, t.path()),
        [(
            "cgroup.subtree_control".into(),
            "+cpuset +cpu +io +memory +pids".into()
        )]
    );
    // Only what is missing is enabled in an existing ancestor.
    assert_eq!(
        writes_in(&j, &t.path().join("a")),
        [("cgroup.subtree_control".into(), "+io +pids".into())]
    );
    // The leaf's own subtree_control is never touched.
    assert!(writes_in(&j, &t.path().join("a/b/c")).is_empty());
}

#[test]
fn v2_cpu_conversions() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(0), 1);
    assert_eq!(shares_to_weight(1_000_000), 10_000);
    let t = v2_tree("");
    let cg = open_v2(&t, "/c");
    cg.create().unwrap();
    let f = |n: &str| last(&t.path().join("c").join(n));
    cg.apply(&res(r#"{"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0", "burst": 1000, "idle": 1}}"#)).unwrap();
    assert_eq!(f("cpu.weight"), "39");
    assert_eq!(f("cpu.max"), "50000 100000");
    assert_eq!(f("cpuset.cpus"), "0");
    assert_eq!(f("cpuset.mems"), "0");
    assert_eq!(f("cpu.max.burst"), "1000");
    assert_eq!(f("cpu.idle"), "1");
    cg.apply(&res(r#"{"cpu": {"quota": -1, "period": 100000}}"#))
        .unwrap();
    assert_eq!(f("cpu.max"), "max 100000");
    cg.apply(&res(r#"{"cpu": {"period": 20000}}"#)).unwrap();
    assert_eq!(f("cpu.max"), "max 20000");
    cg.apply(&res(r#"{"cpu": {"quota": 30000}}"#)).unwrap();
    assert_eq!(f("cpu.max"), "30000");
    let e = cg
        .apply(&res(r#"{"cpu": {"realtimeRuntime": 5}}"#))
        .unwrap_err();
    assert!(e.to_string().contains("v2"), "{e}");
}

#[test]
fn v2_memory_and_pids() {
    let t = v2_tree("");
    let cg = open_v2(&t, "/m");
    cg.create().unwrap();
    let f = |n: &str| last(&t.path().join("m").join(n));
    cg.apply(&res(r#"{"memory": {"limit": -1}, "pids": {"limit": -1}}"#))
        .unwrap();
    assert_eq!(f("memory.max"), "max");
    assert_eq!(f("memory.swap.max"), "max");
    assert_eq!(f("pids.max"), "max");
    cg.apply(&res(
        r#"{"memory": {"limit": 100, "swap": 300, "reservation": 50}, "pids": {"limit": 0}}"#,
    ))
    .unwrap();
    assert_eq!(f("memory.max"), "100");
    assert_eq!(f("memory.swap.max"), "200");
    assert_eq!(f("memory.low"), "50");
    assert_eq!(f("pids.max"), "max");
    cg.apply(&res(
        r#"{"memory": {"limit": 100, "swap": 100}, "pids": {"limit": 42}}"#,
    ))
    .unwrap();
    assert_eq!(f("memory.swap.max"), "0");
    assert_eq!(f("pids.max"), "42");
    for bad in [
        r#"{"memory": {"limit": 100, "swap": 50}}"#,
        r#"{"memory": {"swap": 50}}"#,
    ] {
        assert!(cg.apply(&res(bad)).is_err(), "{bad} should fail");
    }
    touch(&t.path().join("m/memory.current"), "5000\n");
    let e = cg
        .apply(&res(
            r#"{"memory": {"limit": 4000, "checkBeforeUpdate": true}}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("5000"), "{e}");
}

#[test]
fn v2_missing_controller_devices_and_unified() {
    let t = v2_tree("");
    let cg = open_v2(&t, "/u");
    cg.create().unwrap();
    touch(&t.path().join("u/cgroup.controllers"), "cpu pids\n");
    let e = cg
        .apply(&res(r#"{"memory": {"limit": 1000}}"#))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("memory") && msg.contains("/u"), "{msg}");
    // Device rules: validated, nothing written, no error (eBPF gap).
    journal_take();
    cg.apply(&res(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#))
        .unwrap();
    assert!(journal_take().is_empty());
    cg.apply(&res(
        r#"{"unified": {"pids.max": "7", "cgroup.max.depth": "3"}}"#,
    ))
    .unwrap();
    assert_eq!(last(&t.path().join("u/pids.max")), "7");
    assert_eq!(last(&t.path().join("u/cgroup.max.depth")), "3");
    for bad in [
        r#"{"unified": {"../x": "1"}}"#,
        r#"{"unified": {"memory.high": "1"}}"#,
    ] {
        assert!(cg.apply(&res(bad)).is_err(), "{bad} should fail");
    }
}

#[test]
fn v2_kill_uses_cgroup_kill_and_freeze_writes() {
    let t = v2_tree("");
    let cg = open_v2(&t, "k");
    cg.create().unwrap();
    touch(&t.path().join("k/cgroup.kill"), "");
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(last(&t.path().join("k/cgroup.kill")), "1");
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(last(&t.path().join("k/cgroup.freeze")), "0");
    cg.delete().unwrap();
    assert!(!cg.exists());
}

#[test]
fn v2_io_and_hugetlb() {
    let t = v2_tree("");
    let cg = open_v2(&t, "/io");
    cg.create().unwrap();
    cg.apply(&res(r#"{"blockIO": {"weight": 10, "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
                      "hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}"#)).unwrap();
    assert_eq!(last(&t.path().join("io/io.weight")), "1");
    assert_eq!(last(&t.path().join("io/io.max")), "8:16 wiops=100");
    assert_eq!(last(&t.path().join("io/hugetlb.1GB.max")), "0");
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
}

// ---- shared -------------------------------------------------------------

#[test]
fn statfs_guard_refuses_plain_directories() {
    let t = tempfile::tempdir().unwrap();
    let e = cfs::ensure_cgroupfs(t.path(), FsCheck::Statfs).unwrap_err();
    assert!(matches!(e, CgroupError::NotCgroupFs { .. }), "{e}");
    assert!(
        e.to_string().contains(&t.path().display().to_string()),
        "{e}"
    );
    // The same through a layout that points at a plain directory.
    let layout = mountinfo::parse_layout(
        &format!("1 0 0:1 / {} rw - cgroup2 cgroup2 rw\n", t.path().display()),
        "0::/\n",
    );
    let e = Cgroup::from_layout(layout, Path::new("/x"), FsCheck::Statfs).unwrap_err();
    assert!(matches!(e, CgroupError::NotCgroupFs { .. }), "{e}");
    assert!(!t.path().join("x").exists());
}

#[test]
fn open_refuses_dotdot() {
    let t = v2_tree("");
    let e =
        Cgroup::open_with_root(t.path(), CgroupVersion::V2, Path::new("/a/../../etc")).unwrap_err();
    assert!(e.to_string().contains("/a/../../etc"), "{e}");
}

#[test]
fn resources_serde_matches_the_spec_spelling() {
    let r = res(r#"{
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 1, "reservation": 2, "swap": 3, "kernel": 4, "kernelTCP": 5,
                   "swappiness": 6, "disableOOMKiller": true, "useHierarchy": true,
                   "checkBeforeUpdate": true, "somethingNew": 1},
        "cpu": {"shares": 1, "quota": -1, "burst": 2, "period": 3, "realtimeRuntime": 4,
                "realtimePeriod": 5, "cpus": "0", "mems": "0", "idle": 1},
        "pids": {"limit": 9},
        "blockIO": {"weight": 10, "leafWeight": 11,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 1, "leafWeight": 2}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}],
                    "throttleWriteBpsDevice": [], "throttleReadIOPSDevice": [],
                    "throttleWriteIOPSDevice": []},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
        "network": {"classID": 7, "priorities": [{"name": "eth0", "priority": 1}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
        "unified": {"memory.high": "max"},
        "unknownTopLevel": {}
    }"#);
    let m = r.memory.as_ref().unwrap();
    assert_eq!((m.kernel_tcp, m.disable_oom_killer), (Some(5), Some(true)));
    assert_eq!(r.cpu.as_ref().unwrap().realtime_runtime, Some(4));
    let b = r.block_io.as_ref().unwrap();
    assert_eq!(b.throttle_read_iops_device, Some(vec![]));
    assert_eq!(r.network.as_ref().unwrap().class_id, Some(7));
    assert_eq!(r.rdma.as_ref().unwrap()["mlx5_1"].hca_objects, Some(10000));
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "kernelTCP",
        "disableOOMKiller",
        "checkBeforeUpdate",
        "useHierarchy",
    ] {
        assert!(json["memory"].get(key).is_some(), "{key} missing in {json}");
    }
    assert!(json["blockIO"].get("throttleReadIOPSDevice").is_some());
    assert!(json["network"].get("classID").is_some());
    let back: LinuxResources = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    assert_eq!(res("{}"), LinuxResources::default());
    let mut u = BTreeMap::new();
    u.insert("a".to_string(), "b".to_string());
    assert_eq!(
        serde_json::to_string(&LinuxResources {
            unified: Some(u),
            ..Default::default()
        })
        .unwrap(),
        r#"{"unified":{"a":"b"}}"#
    );
}

#[test]
fn out_of_range_weights_and_shares_are_refused_before_writing() {
    for (version, tree) in [
        (CgroupVersion::V1, v1_tree()),
        (CgroupVersion::V2, v2_tree("")),
    ] {
        let cg = Cgroup::open_with_root(tree.path(), version, Path::new("/w")).unwrap();
        cg.create().unwrap();
        journal_take();
        for (bad, needle) in [
            (r#"{"cpu": {"shares": 1}}"#, "cpu.shares: 1 is outside"),
            (r#"{"cpu": {"shares": 300000}}"#, "cpu.shares: 300000"),
            (
                r#"{"blockIO": {"weight": 0}}"#,
                "blockIO.weight: 0 is outside",
            ),
            (
                r#"{"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 5}]}}"#,
                "blockIO.weightDevice.weight: 5",
            ),
        ] {
            let e = cg.apply(&res(bad)).unwrap_err().to_string();
            assert!(e.contains(needle), "{version:?} {bad}: {e}");
        }
        assert!(
            journal_take().is_empty(),
            "{version:?}: nothing may be written"
        );
    }
}

#[test]
fn kernel_refusals_are_explained_with_the_resource() {
    let e = CgroupError::Write {
        path: PathBuf::from("/x/cpuset.cpus"),
        value: "99".into(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    };
    let msg = cfs::explain(e, "cpu.cpus", |_| "not within 0-1".into()).to_string();
    assert_eq!(
        msg,
        "invalid resource cpu.cpus \"99\": not within 0-1 (write /x/cpuset.cpus: Invalid argument (os error 22))"
    );
    let e = CgroupError::Write {
        path: PathBuf::from("/x/f"),
        value: "1".into(),
        source: std::io::Error::from_raw_os_error(libc::EACCES),
    };
    assert!(matches!(
        cfs::explain(e, "f", |_| String::new()),
        CgroupError::Write { .. }
    ));
}
