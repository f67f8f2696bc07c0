//! exec: extra processes in a running container share its namespaces and
//! honour --env, --cwd, --user, --process, -d, --pid-file; ps lists pids.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{assert_contains, Bundle, PATH_ENV};

#[test]
fn exec_prints_to_the_callers_stdout() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let out = b.rt(&["exec", &b.id, "echo", "hi"]).ok("exec echo hi");
    assert_eq!(out.stdout.trim(), "hi", "exec output");
}

#[test]
fn exec_with_env_cwd_and_user() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let out = b
        .rt(&[
            "exec",
            "--env",
            "FOO=from-exec",
            "--cwd",
            "/tmp",
            "--user",
            "1000:1000",
            &b.id,
            "sh",
            "-c",
            "echo $FOO; pwd; id -u; id -g",
        ])
        .ok("exec --env --cwd --user");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["from-exec", "/tmp", "1000", "1000"],
        "exec env/cwd/uid/gid"
    );
}

#[test]
fn exec_with_process_json() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo proc-$FOO; pwd"],
        "env": [PATH_ENV, "FOO=bar"],
        "cwd": "/etc"
    });
    let path = b.dir().join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    let out = b
        .rt(&["exec", "--process", path.to_str().unwrap(), &b.id])
        .ok("exec --process");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["proc-bar", "/etc"], "exec --process output");
}

#[test]
fn exec_shares_the_pid_namespace() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let out = b
        .rt(&["exec", &b.id, "cat", "/proc/1/cmdline"])
        .ok("exec cat /proc/1/cmdline");
    assert_contains(&out.stdout, "sleep", "pid 1 seen by exec");
    let ns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let out = b
        .rt(&["exec", &b.id, "readlink", "/proc/self/ns/pid"])
        .ok("exec readlink");
    assert_eq!(
        Path::new(out.stdout.trim()),
        ns(b.pid()),
        "exec pid ns vs container's"
    );
}

#[test]
fn exec_exit_code_is_propagated() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let out = b.rt(&["exec", &b.id, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), 7, "exec exit code: {out:?}");
}

#[test]
fn exec_detached_writes_pid_file() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let pidfile = b.dir().join("exec.pid");
    b.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &b.id,
        "sleep",
        "999",
    ])
    .ok("exec -d --pid-file");
    let text = fs::read_to_string(&pidfile).expect("exec pid file written");
    let pid: i32 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid file content {text:?}"));
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("999"),
        "pid {pid} from the pid file is not the exec'd sleep: {:?}",
        String::from_utf8_lossy(&cmdline)
    );
}

#[test]
fn ps_lists_container_pids() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let init = b.pid();
    b.rt(&["exec", "-d", &b.id, "sleep", "998"]).ok("exec -d");
    thread::sleep(Duration::from_millis(200));
    let table = b.rt(&["ps", &b.id]).ok("ps");
    assert_contains(&table.stdout, &init.to_string(), "ps table");
    assert!(
        table.stdout.lines().count() >= 3,
        "ps should list header + 2 processes:\n{}",
        table.stdout
    );
    let js = b
        .rt(&["ps", "--format", "json", &b.id])
        .ok("ps --format json");
    let v: Value =
        serde_json::from_str(&js.stdout).unwrap_or_else(|e| panic!("ps json ({e}): {}", js.stdout));
    let pids: Vec<i64> = v
        .as_array()
        .expect("ps json array")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert!(
        pids.contains(&(init as i64)),
        "ps json {pids:?} lacks init pid {init}"
    );
    assert_eq!(pids.len(), 2, "ps json: init + exec'd sleep, got {pids:?}");
}

#[test]
fn exec_into_stopped_container_fails() {
    let mut b = Bundle::new();
    b.start_sleeper();
    b.rt(&["kill", &b.id, "KILL"]).ok("kill");
    b.wait_status("stopped");
    b.rt(&["exec", &b.id, "true"])
        .fails("exec into a stopped container");
}
