//! Real cgroup tests: run as root on the host's own driver (v1 hybrid on
//! the CI host; pure v2 in `run-in-cgroup2-vm.sh`). Each test makes its own
//! `berth-test-<pid>-<n>` cgroup and a Drop guard kills its processes and
//! removes it, also when the test fails. Without root they fail loudly.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cgroups::{Cgroup, CgroupError, CgroupVersion, LinuxResources};

static N: AtomicUsize = AtomicUsize::new(0);

fn need_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "cgroup tests need root (euid is {euid}): run them as root on a host or in \
         /work/shared/tools/cgroup2-vm/run-in-cgroup2-vm.sh"
    );
}

fn unique() -> String {
    format!(
        "berth-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Owns a test cgroup (and optionally its parent) and the processes put in
/// it; tears everything down on drop.
struct Guard {
    cg: Cgroup,
    extra: Vec<Cgroup>,
    children: Vec<Child>,
}

impl Guard {
    fn new(path: &str) -> Guard {
        need_root();
        let cg = Cgroup::open(Path::new(path)).expect("open cgroup");
        Guard {
            cg,
            extra: Vec::new(),
            children: Vec::new(),
        }
    }

    fn spawn_in(&mut self, cmd: &mut Command) -> i32 {
        let child = cmd.spawn().expect("spawn test process");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        self.children.push(child);
        self.cg.add_task(pid).expect("add_task");
        pid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.cg.thaw();
        let _ = self.cg.kill_all(libc::SIGKILL);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.cg.delete() {
            eprintln!("cleanup: {e}");
        }
        for cg in &self.extra {
            if let Err(e) = cg.delete() {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

/// The kernel's value of `file` in whichever hierarchy holds it.
fn kernel_value(cg: &Cgroup, file: &str) -> String {
    for dir in cg.paths() {
        if let Ok(s) = std::fs::read_to_string(dir.join(file)) {
            return s.trim().to_string();
        }
    }
    panic!("{file} not found in any of {:?}", cg.paths());
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn limits_reach_the_kernel() {
    let name = unique();
    let g = Guard::new(&format!("/{name}"));
    let cg = &g.cg;
    cg.create().expect("create");
    assert!(cg.exists());
    cg.apply(&res(r#"{
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 32}
    }"#))
        .expect("apply");
    match cg.version() {
        CgroupVersion::V1 => {
            assert_eq!(kernel_value(cg, "memory.limit_in_bytes"), "67108864");
            assert_eq!(kernel_value(cg, "memory.soft_limit_in_bytes"), "33554432");
            assert_eq!(kernel_value(cg, "memory.memsw.limit_in_bytes"), "134217728");
            assert_eq!(kernel_value(cg, "cpu.shares"), "512");
            assert_eq!(kernel_value(cg, "cpu.cfs_quota_us"), "50000");
            assert_eq!(kernel_value(cg, "cpu.cfs_period_us"), "100000");
        }
        CgroupVersion::V2 => {
            assert_eq!(kernel_value(cg, "memory.max"), "67108864");
            assert_eq!(kernel_value(cg, "memory.low"), "33554432");
            assert_eq!(kernel_value(cg, "memory.swap.max"), "67108864");
            assert_eq!(kernel_value(cg, "cpu.weight"), "20");
            assert_eq!(kernel_value(cg, "cpu.max"), "50000 100000");
        }
    }
    assert_eq!(kernel_value(cg, "pids.max"), "32");
    assert_eq!(kernel_value(cg, "cpuset.cpus"), "0");
    assert_eq!(kernel_value(cg, "cpuset.mems"), "0");

    // Unlimited again.
    cg.apply(&res(
        r#"{"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}"#,
    ))
    .expect("apply unlimited");
    assert_eq!(kernel_value(cg, "pids.max"), "max");
    match cg.version() {
        CgroupVersion::V1 => assert_eq!(kernel_value(cg, "cpu.cfs_quota_us"), "-1"),
        CgroupVersion::V2 => {
            assert_eq!(kernel_value(cg, "memory.max"), "max");
            assert!(kernel_value(cg, "cpu.max").starts_with("max "));
        }
    }
    let st = cg.stats().expect("stats");
    assert_eq!(st.pids.limit, None, "pids unlimited: {st:?}");
    assert_eq!(st.pids.current, Some(0), "{st:?}");
    assert_eq!(st.memory.limit_bytes, None, "memory unlimited: {st:?}");
}

#[test]
fn process_joins_freezes_thaws_and_is_killed() {
    let name = unique();
    let mut g = Guard::new(&format!("/{name}"));
    g.cg.create().expect("create");
    g.cg.apply(&res(
        r#"{"memory": {"limit": 67108864}, "pids": {"limit": 16}}"#,
    ))
    .expect("apply");
    let pid = g.spawn_in(Command::new("sleep").arg("1000"));
    let cg = &g.cg;
    assert_eq!(cg.procs().expect("procs"), [pid]);
    let own =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/pid/cgroup");
    assert!(
        own.contains(&format!("/{name}")),
        "/proc/{pid}/cgroup: {own}"
    );
    let st = cg.stats().expect("stats");
    assert_eq!(st.pids.current, Some(1), "{st:?}");
    assert_eq!(st.pids.limit, Some(16), "{st:?}");
    assert_eq!(st.memory.limit_bytes, Some(67_108_864), "{st:?}");
    assert!(st.memory.usage_bytes.is_some(), "{st:?}");
    assert!(st.cpu.usage_total_ns.is_some(), "{st:?}");

    assert!(!cg.is_frozen().expect("is_frozen"));
    cg.freeze().expect("freeze");
    assert!(
        cg.is_frozen().expect("is_frozen"),
        "expected frozen after freeze()"
    );
    cg.thaw().expect("thaw");
    assert!(
        !cg.is_frozen().expect("is_frozen"),
        "expected thawed after thaw()"
    );

    cg.kill_all(libc::SIGKILL).expect("kill_all");
    let status = g.children[0].wait().expect("wait");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "sleep should die of SIGKILL: {status:?}"
    );
    wait_until("empty cgroup", || {
        cg.procs().map(|p| p.is_empty()).unwrap_or(false)
    });
    cg.delete().expect("delete");
    assert!(!cg.exists(), "dirs left: {:?}", cg.paths());
    for p in cg.paths() {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

#[test]
fn kill_all_with_sigterm_reaches_processes_forked_inside() {
    let name = unique();
    let mut g = Guard::new(&format!("/{name}"));
    g.cg.create().expect("create");
    // The shell waits for a line, so its children fork inside the cgroup.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "read x; sleep 1000 & sleep 1000 & wait"])
        .stdin(Stdio::piped());
    g.spawn_in(&mut cmd);
    let stdin = g.children[0].stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").expect("write to sh");
    let cg = &g.cg;
    wait_until("3 processes", || {
        cg.procs().map(|p| p.len() == 3).unwrap_or(false)
    });
    cg.kill_all(libc::SIGTERM).expect("kill_all SIGTERM");
    let status = g.children[0].wait().expect("wait sh");
    assert!(
        !status.success(),
        "sh should have been signalled: {status:?}"
    );
    wait_until("empty cgroup", || {
        cg.procs().map(|p| p.is_empty()).unwrap_or(false)
    });
    assert!(
        !cg.is_frozen().expect("is_frozen"),
        "kill_all must thaw again"
    );
}

#[test]
fn sigkill_on_a_frozen_cgroup_kills_and_delete_retries_while_tasks_exit() {
    let name = unique();
    let mut g = Guard::new(&format!("/{name}"));
    g.cg.create().expect("create");
    g.spawn_in(Command::new("sleep").arg("1000"));
    g.cg.freeze().expect("freeze");
    g.cg.kill_all(libc::SIGKILL).expect("kill_all");
    // No wait: delete must retry on EBUSY until the task is gone.
    g.cg.delete().expect("delete right after kill");
    assert!(!g.cg.exists());
    let status = g.children[0].wait().expect("wait");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

#[test]
fn nested_path_gets_controllers_and_limits() {
    let parent = unique();
    let mut g = Guard::new(&format!("/{parent}/inner"));
    g.extra
        .push(Cgroup::open(Path::new(&format!("/{parent}"))).expect("open parent"));
    g.cg.create().expect("create nested");
    g.cg.apply(&res(
        r#"{"pids": {"limit": 5}, "memory": {"limit": 33554432}}"#,
    ))
    .expect("apply nested");
    assert_eq!(kernel_value(&g.cg, "pids.max"), "5");
    if g.cg.version() == CgroupVersion::V2 {
        let parent_dir = g.cg.paths()[0].parent().map(PathBuf::from).expect("parent");
        let sc = std::fs::read_to_string(parent_dir.join("cgroup.subtree_control")).expect("read");
        for c in ["memory", "pids", "cpu"] {
            assert!(sc.contains(c), "{c} not enabled in parent: {sc:?}");
        }
    }
    let pid = g.spawn_in(Command::new("sleep").arg("1000"));
    assert_eq!(g.cg.procs().expect("procs"), [pid]);
}

#[test]
fn missing_v1_controller_and_tmpfs_root_are_refused() {
    need_root();
    // The statfs guard: any tmpfs mounted at a cgroup location is refused.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for line in mi.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.get(dash + 1) == Some(&"tmpfs") && f[4].starts_with("/sys/fs/cgroup") {
            let e = cgroups::ensure_cgroupfs(Path::new(f[4])).unwrap_err();
            assert!(matches!(e, CgroupError::NotCgroupFs { .. }), "{e}");
        }
    }
    let name = unique();
    let g = Guard::new(&format!("/{name}"));
    g.cg.create().expect("create");
    let has_net_cls = mi.contains("net_cls");
    let r = g.cg.apply(&res(r#"{"network": {"classID": 1048577}}"#));
    match (g.cg.version(), has_net_cls) {
        (CgroupVersion::V1, false) => {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("net_cls"), "{e}");
        }
        (CgroupVersion::V2, _) => r.expect("network is ignored on v2"),
        (CgroupVersion::V1, true) => r.expect("net_cls classid"),
    }
    // v2 takes device rules without enforcing them; v1 writes them.
    g.cg.apply(&res(r#"{"devices": [{"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#))
        .expect("devices");
    if g.cg.version() == CgroupVersion::V1 {
        assert_eq!(kernel_value(&g.cg, "devices.list"), "c 1:3 rwm");
    }
}

#[test]
fn device_rules_replace_the_v2_program_and_bad_values_are_named() {
    let name = unique();
    let g = Guard::new(&format!("/{name}"));
    let cg = &g.cg;
    cg.create().expect("create");
    let rules = r#"{"devices": [{"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#;
    cg.apply(&res(rules)).expect("apply devices");
    cg.apply(&res(rules)).expect("apply devices again");
    match cg.version() {
        CgroupVersion::V2 => assert_eq!(
            cg.device_programs().expect("query device programs"),
            Some(1),
            "a second apply must replace the eBPF program, not stack a new one"
        ),
        CgroupVersion::V1 => {
            assert_eq!(cg.device_programs().expect("v1"), None);
            assert_eq!(kernel_value(cg, "devices.list"), "c 1:3 rwm");
        }
    }
    for (bad, needles) in [
        (r#"{"cpu": {"cpus": "99"}}"#, ["cpu.cpus", "99"]),
        (r#"{"cpu": {"shares": 1}}"#, ["cpu.shares", "1"]),
        (r#"{"blockIO": {"weight": 0}}"#, ["blockIO.weight", "0"]),
    ] {
        let e = cg.apply(&res(bad)).expect_err(bad).to_string();
        for n in needles {
            assert!(e.contains(n), "error for {bad} should name {n:?}: {e}");
        }
    }
}
