//! Rootless: the runtime run by an unprivileged user (uid 65534 through
//! `setpriv`), with the caller's uid mapped to root in a user namespace and
//! no cgroup delegated to it — the container runs without a cgroup, as
//! with runc.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::*;

const NOBODY: &str = "65534";

fn as_nobody(state: &Path, args: &[&str]) -> Outcome {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .arg(runtime_bin())
        .arg("--root")
        .arg(state)
        .args(args);
    run_captured(c, &format!("as uid {NOBODY}: {}", args.join(" ")))
}

/// Force-deletes the rootless container on drop, also when a test fails.
struct Cleanup(PathBuf, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = as_nobody(&self.0, &["delete", "--force", &self.1]);
    }
}

/// A bundle whose config is what `spec --rootless` writes for uid 65534,
/// pointed at the bundle's rootfs; and a state root that uid may write.
fn rootless_bundle() -> (Bundle, PathBuf, serde_json::Value) {
    let mut b = Bundle::new();
    let state = b.host_dir();
    let spec_dir = b.host_dir();
    as_nobody(
        &state,
        &["spec", "--rootless", "--bundle", spec_dir.to_str().unwrap()],
    )
    .ok("spec --rootless as an unprivileged user");
    let text = std::fs::read_to_string(spec_dir.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["root"]["path"] = json!(b.rootfs());
    (b, state, config)
}

#[test]
fn rootless_run_exec_and_delete_without_a_delegated_cgroup() {
    let (mut b, state, mut config) = rootless_bundle();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 30"]);
    b.config = config;
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let id = b.id.clone();
    let _cleanup = Cleanup(state.clone(), id.clone());

    as_nobody(&state, &["run", "-d", "--bundle", &bundle, &id]).ok("rootless run -d");
    let st: serde_json::Value =
        serde_json::from_str(&as_nobody(&state, &["state", &id]).ok("state").stdout).unwrap();
    assert_eq!(st["status"], "running", "state: {st}");

    let out = as_nobody(
        &state,
        &["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"],
    )
    .ok("rootless exec");
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some("0"),
        "root inside: {}",
        out.stdout
    );
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        map,
        ["0", NOBODY, "1"],
        "uid 0 maps to the caller: {}",
        out.stdout
    );

    let code = as_nobody(&state, &["exec", &id, "sh", "-c", "exit 4"]).code();
    assert_eq!(code, 4, "exec exit code");

    as_nobody(&state, &["kill", &id, "KILL"]).ok("kill");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = as_nobody(&state, &["state", &id]).ok("state").stdout;
        if st.contains("\"stopped\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not stopped: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    as_nobody(&state, &["delete", &id]).ok("delete");
    assert!(
        as_nobody(&state, &["list", "-q"])
            .ok("list")
            .stdout
            .trim()
            .is_empty(),
        "nothing left in the state dir"
    );
}

#[test]
fn rootless_limits_without_a_cgroup_are_an_error() {
    if !is_berth() {
        return; // runc 1.1 words it differently; the behaviour is the same
    }
    let (mut b, state, mut config) = rootless_bundle();
    config["process"]["args"] = json!(["true"]);
    config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    b.config = config;
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    let _cleanup = Cleanup(state.clone(), b.id.clone());
    let out =
        as_nobody(&state, &["run", "--bundle", &bundle, &b.id]).fails("limits without a cgroup");
    assert!(
        out.stderr.contains("cgroup") && out.stderr.trim().lines().count() == 1,
        "one line about the cgroup: {}",
        out.stderr
    );
}
