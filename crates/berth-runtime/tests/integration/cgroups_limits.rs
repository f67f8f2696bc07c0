//! cgroup limits as a user notices them, on whichever driver the host has
//! (v1 here, pure v2 in the cgroup2 VM): OOM kills reported by `events`,
//! the pids limit against a fork bomb, CPU throttling in `events --stats`,
//! device access control, pause/resume, `update` of live limits and its
//! refusal of bad values. Every test checks that no cgroup is left behind.
//!
//! Timeouts are generous: CPU in the VM is 10-30x slower than on the host.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{assert_contains, is_berth, wait_timeout, Bundle};

const SLOW: Duration = Duration::from_secs(120);

fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The host file of the container's cgroup: v1 `<ctrl>/<id>/<v1>`, v2
/// `<id>/<v2>`.
fn cg_file(b: &Bundle, ctrl: &str, v1: &str, v2: &str) -> PathBuf {
    if is_v2() {
        Path::new("/sys/fs/cgroup").join(&b.id).join(v2)
    } else {
        Path::new("/sys/fs/cgroup").join(ctrl).join(&b.id).join(v1)
    }
}

fn cg_read(b: &Bundle, ctrl: &str, v1: &str, v2: &str) -> String {
    let p = cg_file(b, ctrl, v1, v2);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// `events --stats ID` parsed; panics unless it is a stats event of `b`.
fn stats(b: &Bundle) -> Value {
    let out = b.rt(&["events", "--stats", &b.id]).ok("events --stats");
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("events --stats output is not JSON ({e}): {}", out.stdout));
    assert_eq!(v["type"], "stats", "event type in {v}");
    assert_eq!(v["id"], b.id.as_str(), "event id in {v}");
    v["data"].clone()
}

/// A number of the stats (missing = 0, as runc omits zeros).
fn num(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn poll_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        sleep(Duration::from_millis(100));
    }
}

fn assert_no_cgroup_left(b: &Bundle) {
    b.rt(&["delete", "--force", &b.id]).ok("delete --force");
    let mut left = b.leftover_cgroups();
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        sleep(Duration::from_millis(50));
        left = b.leftover_cgroups();
    }
    assert!(left.is_empty(), "cgroup dirs left after delete: {left:?}");
}

fn read_all(f: &mut fs::File) -> String {
    let mut s = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut s);
    s
}

#[test]
fn oom_kill_is_reported_by_events() {
    let mut b = Bundle::new();
    let limit = 32 * 1024 * 1024;
    b.config["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    // The hog is a child, so the container outlives the OOM kill.
    b.sh("sleep 1; sh -c 'x=a; while true; do x=$x$x; done'; echo hog-died; sleep 1000");
    b.create().ok("create");
    let mut out = tempfile::tempfile().unwrap();
    let mut cmd = b.command(&["events", "--interval", "1s", &b.id]);
    cmd.stdout(out.try_clone().unwrap());
    b.helpers.push(cmd.spawn().expect("spawn events"));
    b.start().ok("start");
    poll_until("an oom event from `events`", SLOW, || {
        read_all(&mut out).contains(r#""type":"oom""#)
    });
    let text = read_all(&mut out);
    let oom: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "oom")
        .unwrap_or_else(|| panic!("no parsable oom event in:\n{text}"));
    assert_eq!(oom, json!({"type": "oom", "id": b.id}), "oom event");
    let st = stats(&b);
    assert_eq!(
        num(&st, &["memory", "usage", "limit"]),
        limit,
        "limit in {st}"
    );
    // `events` ends by itself once the container is gone.
    b.rt(&["kill", &b.id, "KILL"]).ok("kill");
    let mut events = b.helpers.pop().expect("events child");
    let status = wait_timeout(&mut events, SLOW, "events after the container stopped");
    assert!(status.success(), "events exited with {status:?}");
    assert_no_cgroup_left(&b);
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    b.start_sleeper();
    let bomb = b.rt(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "for i in $(seq 1 40); do sleep 100 & done; echo all-forked",
    ]);
    assert!(
        !bomb.stdout.contains("all-forked"),
        "40 forks succeeded under pids.max=20: {bomb:?}"
    );
    let st = stats(&b);
    let current = num(&st, &["pids", "current"]);
    assert_eq!(num(&st, &["pids", "limit"]), 20, "pids limit in {st}");
    assert!(
        (10..=20).contains(&current),
        "expected the bomb to fill the limit (10..=20 tasks), got {current}"
    );
    // The host still forks.
    let st = Command::new("/bin/true")
        .status()
        .expect("fork on the host");
    assert!(st.success(), "/bin/true on the host: {st:?}");
    assert_no_cgroup_left(&b);
}

#[test]
fn cpu_quota_shows_as_throttling() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 10000, "period": 100000});
    b.sh("while :; do :; done");
    b.create().ok("create");
    b.start().ok("start");
    let mut last = Value::Null;
    poll_until("throttledPeriods > 0 in events --stats", SLOW, || {
        last = stats(&b);
        num(&last, &["cpu", "throttling", "throttledPeriods"]) > 0
    });
    assert!(
        num(&last, &["cpu", "throttling", "periods"]) > 0,
        "periods in {last}"
    );
    assert!(
        num(&last, &["cpu", "usage", "total"]) > 0,
        "usage in {last}"
    );
    if is_v2() {
        assert_eq!(cg_read(&b, "cpu", "", "cpu.max"), "10000 100000");
    } else {
        assert_eq!(cg_read(&b, "cpu", "cpu.cfs_quota_us", ""), "10000");
    }
    assert_no_cgroup_left(&b);
}

#[test]
fn disallowed_device_cannot_be_opened_allowed_ones_work() {
    let mut b = Bundle::new();
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    b.sh(
        "mknod /dev/berth-mem c 1 1 && echo mknod-ok; \
         if head -c 1 /dev/berth-mem >/dev/null 2>&1; then echo mem-open; else echo mem-denied; fi; \
         head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok",
    );
    let out = b.run().ok("run");
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["mknod-ok", "mem-denied", "4", "null-ok"],
        "device access inside (stderr: {})",
        out.stderr
    );
    assert_no_cgroup_left(&b);
}

#[test]
fn pause_freezes_and_resume_continues() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    b.bind(&host, "/data", false);
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /data/c.tmp; mv /data/c.tmp /data/c; sleep 0.1; done");
    b.create().ok("create");
    b.start().ok("start");
    let counter = || -> u64 {
        fs::read_to_string(host.join("c"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    poll_until("the counter to start", SLOW, || counter() > 2);
    b.rt(&["pause", &b.id]).ok("pause");
    assert_eq!(b.status(), "paused");
    let frozen = counter();
    sleep(Duration::from_millis(1500));
    assert_eq!(counter(), frozen, "counter advanced while paused");
    b.rt(&["resume", &b.id]).ok("resume");
    assert_eq!(b.status(), "running");
    poll_until("the counter to advance after resume", SLOW, || {
        counter() > frozen
    });
    assert_no_cgroup_left(&b);
}

#[test]
fn update_changes_live_limits_and_the_stored_config() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 50});
    b.start_sleeper();
    b.rt(&["update", "--memory", "100m", "--pids-limit", "30", &b.id])
        .ok("update --memory 100m --pids-limit 30");
    assert_eq!(
        cg_read(&b, "memory", "memory.limit_in_bytes", "memory.max"),
        "104857600"
    );
    assert_eq!(cg_read(&b, "pids", "pids.max", "pids.max"), "30");
    let file = b.host_dir().join("resources.json");
    fs::write(&file, r#"{"cpu": {"shares": 256}}"#).unwrap();
    b.rt(&["update", "-r", file.to_str().unwrap(), &b.id])
        .ok("update -r");
    if is_v2() {
        assert_eq!(cg_read(&b, "cpu", "", "cpu.weight"), "10");
    } else {
        assert_eq!(cg_read(&b, "cpu", "cpu.shares", ""), "256");
    }
    let st = stats(&b);
    assert_eq!(num(&st, &["memory", "usage", "limit"]), 104857600, "{st}");
    assert_eq!(num(&st, &["pids", "limit"]), 30, "{st}");
    if is_berth() {
        let state = b.state_root().join(&b.id).join("state.json");
        let saved: Value = serde_json::from_str(&fs::read_to_string(&state).unwrap()).unwrap();
        let r = &saved["config"]["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 104857600, "stored memory in {r}");
        assert_eq!(r["pids"]["limit"], 30, "stored pids in {r}");
        assert_eq!(r["cpu"]["shares"], 256, "stored cpu in {r}");
    }
    assert_no_cgroup_left(&b);
}

#[test]
fn update_refuses_bad_values_naming_them() {
    let mut b = Bundle::new();
    b.start_sleeper();
    for (args, needles) in [
        (vec!["--cpuset-cpus", "99"], vec!["cpu.cpus", "99"]),
        (vec!["--blkio-weight", "0"], vec!["--blkio-weight", "0"]),
        (vec!["--blkio-weight", "-5"], vec!["--blkio-weight", "-5"]),
        (vec!["--cpu-share", "1"], vec!["cpu.shares", "1"]),
        (vec!["--memory", "12x"], vec!["--memory", "12x"]),
        (vec!["--l3-cache-schema", "L3:0=f"], vec!["not supported"]),
    ] {
        let mut full = vec!["update"];
        full.extend(&args);
        full.push(&b.id);
        let out = b.rt(&full).fails(&format!("update {args:?}"));
        if is_berth() {
            for n in needles {
                assert_contains(&out.stderr, n, &format!("error of update {args:?}"));
            }
            assert_eq!(
                out.stderr.trim().lines().count(),
                1,
                "one line: {}",
                out.stderr
            );
        }
    }
    if !is_v2() {
        // v1 refuses a limit below what it cannot reclaim (v2 OOM-kills).
        let out = b
            .rt(&["update", "--memory", "4k", &b.id])
            .fails("update --memory 4k");
        if is_berth() {
            assert_contains(&out.stderr, "memory.limit", "memory below usage");
            assert_contains(&out.stderr, "current usage", "memory below usage");
        }
    }
    assert_eq!(
        b.status(),
        "running",
        "bad updates must not hurt the container"
    );
    assert_no_cgroup_left(&b);
}

#[test]
fn events_stats_prints_the_numbers() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 40});
    b.start_sleeper();
    let st = stats(&b);
    assert!(
        num(&st, &["memory", "usage", "usage"]) > 0,
        "memory usage in {st}"
    );
    assert_eq!(
        num(&st, &["memory", "usage", "limit"]),
        64 * 1024 * 1024,
        "{st}"
    );
    assert!(num(&st, &["pids", "current"]) >= 1, "pids current in {st}");
    assert_eq!(num(&st, &["pids", "limit"]), 40, "{st}");
    assert!(
        num(&st, &["cpu", "usage", "total"]) > 0,
        "cpu usage in {st}"
    );
    assert!(st["cpu"]["usage"]["kernel"].is_u64(), "kernel time in {st}");
    b.rt(&["kill", &b.id, "KILL"]).ok("kill");
    b.wait_status("stopped");
    let out = b
        .rt(&["events", "--stats", &b.id])
        .fails("events on a stopped container");
    if is_berth() {
        assert_contains(&out.stderr, "not running", "events on a stopped container");
    }
    assert_no_cgroup_left(&b);
}
