//! Bad bundles: each is refused with a non-zero exit and a message naming
//! the offending field or path, and leaves no state, cgroup or mount.

use std::fs;

use serde_json::json;

use crate::harness::{host_mounts_containing, is_berth, Bundle};

/// `create` must fail cleanly; `needle` must appear in the error (checked
/// for berth only: runc's wording is not ours to pin down).
fn assert_refused(b: &Bundle, needle: &str, what: &str) {
    let bundle = b.dir().to_str().unwrap().to_string();
    let out = b.rt(&["create", "--bundle", &bundle, &b.id]).fails(what);
    if is_berth() {
        assert!(
            out.stderr.contains(needle),
            "{what}: expected the error to name {needle:?}, got: {}",
            out.stderr
        );
    }
    assert!(
        b.state_entries().is_empty(),
        "{what}: state left under --root: {:?}",
        b.state_entries()
    );
    b.rt(&["state", &b.id])
        .fails(&format!("{what}: state after refused create"));
    assert!(
        b.leftover_cgroups().is_empty(),
        "{what}: cgroup left: {:?}",
        b.leftover_cgroups()
    );
    let mounts = host_mounts_containing(&bundle);
    assert!(mounts.is_empty(), "{what}: host mounts left: {mounts:?}");
}

#[test]
fn malformed_config_json() {
    let b = Bundle::new();
    fs::write(b.dir().join("config.json"), "{ this is not json").unwrap();
    assert_refused(&b, "config.json", "malformed config.json");
}

#[test]
fn truncated_config_json() {
    let b = Bundle::new();
    let text = serde_json::to_string_pretty(&b.config).unwrap();
    fs::write(b.dir().join("config.json"), &text[..text.len() / 2]).unwrap();
    assert_refused(&b, "config.json", "truncated config.json");
}

#[test]
fn missing_config_json() {
    let b = Bundle::new();
    assert_refused(&b, "config.json", "missing config.json");
}

#[test]
fn field_of_the_wrong_type() {
    let mut b = Bundle::new();
    b.config["process"]["user"]["uid"] = json!("x");
    b.write_config();
    assert_refused(&b, "uid", "process.user.uid as a string");
}

#[test]
fn missing_root_directory() {
    let mut b = Bundle::new();
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.write_config();
    assert_refused(&b, "no-such-rootfs", "missing root.path");
}

#[test]
fn unknown_namespace_type() {
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogusns"}));
    b.write_config();
    assert_refused(&b, "bogusns", "unknown namespace type");
}

/// runtime-spec 1.0 requires absolute destinations; runc 1.1 still accepts
/// relative ones (resolving them against `/`), so the refusal is berth's.
#[test]
fn relative_mount_destination() {
    let mut b = Bundle::new();
    b.add_mount(json!({"destination": "relative/dest", "type": "tmpfs", "source": "tmpfs"}));
    b.write_config();
    if is_berth() {
        assert_refused(&b, "relative/dest", "relative mount destination");
    }
}

#[test]
fn nonexistent_bundle_directory() {
    let b = Bundle::new();
    let missing = b.dir().join("nope");
    let out = b
        .rt(&["create", "--bundle", missing.to_str().unwrap(), &b.id])
        .fails("create with a missing bundle dir");
    if is_berth() {
        assert!(
            out.stderr.contains("nope"),
            "error should name the bundle: {}",
            out.stderr
        );
    }
    assert!(
        b.state_entries().is_empty(),
        "state left: {:?}",
        b.state_entries()
    );
}

#[test]
fn missing_program_fails_start_or_create() {
    let mut b = Bundle::new();
    b.args(&["/no/such/program"]);
    let out = b.run();
    assert!(
        !out.success(),
        "run of a missing program succeeded: {out:?}"
    );
    if is_berth() {
        assert!(
            out.stderr.contains("/no/such/program"),
            "error should name the program: {}",
            out.stderr
        );
    }
}

/// containerd's shim reads the runtime's `--log` (JSON) to explain a failed
/// create: the error must be there as a JSON line with level "error".
#[test]
fn json_log_records_the_error_for_containerd() {
    let mut b = Bundle::new();
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.write_config();
    let log = b.dir().join("log.json");
    let bundle = b.dir().to_str().unwrap().to_string();
    let log_arg = log.to_str().unwrap().to_string();
    b.rt(&[
        "--log",
        &log_arg,
        "--log-format",
        "json",
        "create",
        "--bundle",
        &bundle,
        &b.id,
    ])
    .fails("create with a missing rootfs");
    let text = fs::read_to_string(&log).unwrap_or_default();
    let errors: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["level"] == "error")
        .collect();
    assert!(
        !errors.is_empty(),
        "an error entry in the JSON log, got: {text:?}"
    );
    let msg = errors[errors.len() - 1]["msg"].as_str().unwrap_or_default();
    if is_berth() {
        assert!(
            msg.contains("no-such-rootfs"),
            "the message names the path: {msg}"
        );
    }
}
