//! Lifecycle: create/start/state/kill/delete/list/run as the OCI runtime
//! spec and runc's CLI define them.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{assert_contains, Bundle};

fn proc_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn create_reports_created_and_defers_the_user_program_until_start() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    b.bind(&host, "/out", false);
    b.sh("touch /out/started; exec sleep 1000");
    b.create().ok("create");

    let st = b.state();
    assert_eq!(st["status"], "created", "state after create: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "expected pid > 0 after create, got {st}");
    assert!(
        proc_alive(pid as i32),
        "container process {pid} does not exist"
    );
    assert_eq!(st["id"], b.id.as_str(), "state id: {st}");
    let bundle = st["bundle"].as_str().unwrap_or("");
    assert_eq!(
        fs::canonicalize(bundle).ok(),
        fs::canonicalize(b.dir()).ok(),
        "state bundle: expected {}, got {bundle:?}",
        b.dir().display()
    );
    assert!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "state ociVersion missing: {st}"
    );
    thread::sleep(Duration::from_millis(300));
    assert!(
        !host.join("started").exists(),
        "user program ran before start (marker file exists after create)"
    );

    b.start().ok("start");
    b.wait_status("running");
    for _ in 0..100 {
        if host.join("started").exists() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        host.join("started").exists(),
        "user program did not run after start"
    );
}

#[test]
fn full_lifecycle_ends_with_state_failing() {
    let mut b = Bundle::new();
    b.start_sleeper();
    b.rt(&["kill", &b.id, "KILL"]).ok("kill KILL");
    b.wait_status("stopped");
    b.rt(&["delete", &b.id]).ok("delete stopped container");
    b.rt(&["state", &b.id]).fails("state after delete");
    assert!(
        b.leftover_cgroups().is_empty(),
        "cgroup left after delete: {:?}",
        b.leftover_cgroups()
    );
}

/// A running container whose PID 1 exits on SIGTERM. The kernel drops
/// unhandled signals to a namespace's init, so the shell installs a trap
/// and says so through a bind-mounted dir before the test signals it.
fn start_term_handler() -> Bundle {
    let mut b = Bundle::new();
    let host = b.host_dir();
    b.bind(&host, "/out", false);
    b.sh("trap 'exit 0' TERM; touch /out/ready; sleep 1000 & wait");
    b.create().ok("create");
    b.start().ok("start");
    for _ in 0..200 {
        if host.join("ready").exists() {
            break;
        }
        thread::sleep(Duration::from_millis(25));
    }
    assert!(
        host.join("ready").exists(),
        "container never installed its TERM trap"
    );
    b
}

/// `kill` with each spelling of a signal that runc accepts.
fn kill_with(signal: &str) {
    let b = start_term_handler();
    b.rt(&["kill", &b.id, signal]).ok(&format!("kill {signal}"));
    b.wait_status("stopped");
}

#[test]
fn kill_term_by_name() {
    kill_with("TERM");
}
#[test]
fn kill_sigterm_by_full_name() {
    kill_with("SIGTERM");
}
#[test]
fn kill_term_by_number() {
    kill_with("15");
}
#[test]
fn kill_9_by_number() {
    kill_with("9");
}
#[test]
fn kill_kill_by_name() {
    kill_with("KILL");
}
#[test]
fn kill_sigkill_by_full_name() {
    kill_with("SIGKILL");
}

#[test]
fn kill_default_signal_is_sigterm() {
    kill_with_default();
}

fn kill_with_default() {
    let b = start_term_handler();
    b.rt(&["kill", &b.id]).ok("kill without a signal");
    b.wait_status("stopped");
}

#[test]
fn list_shows_the_container_in_all_formats() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let table = b.rt(&["list"]).ok("list");
    assert_contains(&table.stdout, &b.id, "list");
    assert_contains(&table.stdout, "running", "list");

    let q = b.rt(&["list", "-q"]).ok("list -q");
    assert_eq!(q.stdout.trim(), b.id, "list -q output");

    let js = b.rt(&["list", "--format", "json"]).ok("list --format json");
    let v: Value = serde_json::from_str(&js.stdout)
        .unwrap_or_else(|e| panic!("list --format json is not JSON ({e}): {}", js.stdout));
    let arr = v.as_array().expect("list json is an array");
    let entry = arr
        .iter()
        .find(|e| e["id"] == b.id.as_str())
        .unwrap_or_else(|| panic!("container {} not in {v}", b.id));
    assert_eq!(entry["status"], "running", "list json entry: {entry}");
    assert_eq!(entry["pid"].as_i64(), Some(b.pid() as i64), "list json pid");
}

#[test]
fn delete_of_running_container_needs_force() {
    let mut b = Bundle::new();
    b.start_sleeper();
    let pid = b.pid();
    b.rt(&["delete", &b.id])
        .fails("delete running without --force");
    assert_eq!(
        b.status(),
        "running",
        "container must survive a refused delete"
    );
    b.rt(&["delete", "--force", &b.id]).ok("delete --force");
    b.rt(&["state", &b.id]).fails("state after delete --force");
    for _ in 0..100 {
        if !proc_alive(pid) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !proc_alive(pid),
        "container process {pid} survived delete --force"
    );
}

#[test]
fn duplicate_id_is_refused() {
    let b = Bundle::new();
    b.create().ok("first create");
    let again = b.create().fails("create with a duplicate id");
    assert_eq!(
        b.status(),
        "created",
        "first container must be intact: {again:?}"
    );
}

#[test]
fn unknown_id_fails_for_every_verb() {
    let b = Bundle::new();
    let ghost = format!("{}-ghost", b.id);
    for args in [
        vec!["state", &ghost],
        vec!["start", &ghost],
        vec!["kill", &ghost, "KILL"],
        vec!["delete", &ghost],
    ] {
        let out = b.rt(&args).fails(&args.join(" "));
        if crate::harness::is_berth() {
            assert_contains(&out.stderr, &ghost, &args.join(" "));
        }
    }
}

#[test]
fn start_of_running_container_fails() {
    let mut b = Bundle::new();
    b.start_sleeper();
    b.start().fails("second start");
    assert_eq!(b.status(), "running");
}

#[test]
fn pid_file_holds_the_container_pid() {
    let b = Bundle::new();
    b.write_config();
    let pidfile = b.dir().join("pid");
    let bundle = b.dir().to_str().unwrap();
    let mut c = b.command(&["create", "--bundle", bundle, "--pid-file"]);
    c.arg(&pidfile).arg(&b.id);
    c.stdout(std::process::Stdio::null());
    crate::harness::run_captured(c, "create --pid-file").ok("create --pid-file");
    let text = fs::read_to_string(&pidfile).expect("pid file written");
    assert_eq!(
        text.trim().parse::<i32>().ok(),
        Some(b.pid()),
        "pid file content {text:?} vs state pid"
    );
}

/// Regression: the runtime changes into the bundle, and a relative
/// `--pid-file` used to be written there instead of the caller's directory.
#[test]
fn relative_pid_file_lands_in_the_callers_directory() {
    let mut b = Bundle::new();
    b.write_config();
    let caller = b.host_dir();
    let bundle = b.dir().to_str().unwrap();
    let mut c = b.command(&["create", "--bundle", bundle, "--pid-file", "pid", &b.id]);
    c.current_dir(&caller);
    c.stdout(std::process::Stdio::null());
    crate::harness::run_captured(c, "create --pid-file pid").ok("create --pid-file pid");
    let text = fs::read_to_string(caller.join("pid")).expect("pid file in the caller's directory");
    assert_eq!(
        text.trim().parse::<i32>().ok(),
        Some(b.pid()),
        "pid file content {text:?}"
    );
    assert!(!b.dir().join("pid").exists(), "no pid file in the bundle");
}

#[test]
fn run_detach_returns_while_container_runs() {
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let mut c = b.command(&["run", "--detach", "--bundle", &bundle, &b.id]);
    c.stdout(std::process::Stdio::null());
    crate::harness::run_captured(c, "run --detach").ok("run --detach");
    assert_eq!(b.status(), "running");
    assert!(proc_alive(b.pid()));
}

#[test]
fn run_returns_the_exit_code() {
    let mut b = Bundle::new();
    b.sh("exit 3");
    let out = b.run();
    assert_eq!(out.code(), 3, "run of `exit 3`: {out:?}");
}

#[test]
fn run_of_killed_container_returns_128_plus_signal() {
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let mut c = b.command(&["run", "--bundle", &bundle, &b.id]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let killer = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = b.rt(&["state", &b.id]);
            if out.success() && out.stdout.contains("running") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "container never ran");
            thread::sleep(Duration::from_millis(50));
        }
        b.rt(&["kill", &b.id, "KILL"])
    };
    killer.ok("kill KILL");
    let st = crate::harness::wait_timeout(&mut child, crate::harness::TIMEOUT, "run");
    assert_eq!(
        st.code(),
        Some(137),
        "run killed by SIGKILL: expected 137, got {st:?}"
    );
}

#[test]
fn options_after_the_id_and_equals_form() {
    let b = Bundle::new();
    b.write_config();
    let bundle = b.dir().to_str().unwrap();
    let mut c = b.command(&["create", &b.id, "--bundle", bundle]);
    c.stdout(std::process::Stdio::null());
    crate::harness::run_captured(c, "create ID --bundle DIR").ok("create ID --bundle DIR");
    assert_eq!(b.status(), "created");

    let b2 = Bundle::new();
    b2.write_config();
    let arg = format!("--bundle={}", b2.dir().display());
    let mut c = b2.command(&["create", &arg, &b2.id]);
    c.stdout(std::process::Stdio::null());
    crate::harness::run_captured(c, "create --bundle=DIR").ok("create --bundle=DIR");
    assert_eq!(b2.status(), "created");
}
