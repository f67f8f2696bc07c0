//! Devices: the default device nodes with the right numbers, extra
//! linux.devices entries, and the standard /dev symlinks.

use serde_json::json;

use crate::harness::{assert_contains, Bundle};

#[test]
fn default_devices_exist_with_right_numbers() {
    let mut b = Bundle::new();
    b.sh("for d in null zero full random urandom tty; do stat -c '%n %F %t %T' /dev/$d; done");
    let out = b.run().ok("run");
    // (name, major, minor) — stat prints them in hex.
    for (name, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let want = format!("/dev/{name} character special file {maj:x} {min:x}");
        assert!(
            out.stdout.lines().any(|l| l == want),
            "expected {want:?}, got:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn default_devices_work() {
    let mut b = Bundle::new();
    b.sh("echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; head -c 8 /dev/urandom | wc -c");
    let out = b.run().ok("run");
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["null-ok", "4", "8"],
        "using default devices: {}",
        out.stderr
    );
}

#[test]
fn configured_device_appears_with_mode_and_owner() {
    let mut b = Bundle::new();
    b.config["linux"]["devices"] = json!([{"path": "/dev/berthnull", "type": "c",
        "major": 1, "minor": 3, "fileMode": 0o646, "uid": 1000, "gid": 1000}]);
    b.config["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
    b.sh("stat -c '%F %t %T %a %u %g' /dev/berthnull; echo x > /dev/berthnull && echo write-ok");
    let out = b.run().ok("run");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["character special file 1 3 646 1000 1000", "write-ok"],
        "configured /dev/berthnull: {}",
        out.stderr
    );
}

#[test]
fn standard_dev_symlinks() {
    let mut b = Bundle::new();
    b.sh("for l in ptmx fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done");
    let out = b.run().ok("run");
    for want in [
        "ptmx pts/ptmx",
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == want),
            "expected {want:?} in:\n{}",
            out.stdout
        );
    }
}

#[test]
fn device_cgroup_denies_unlisted_devices() {
    let mut b = Bundle::new();
    // /dev/sda-like node made by hand: mknod works (CAP_MKNOD dropped by
    // default, so grant it) but the device cgroup must refuse opening it.
    b.config["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_MKNOD"));
    b.config["process"]["capabilities"]["effective"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_MKNOD"));
    b.config["process"]["capabilities"]["permitted"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_MKNOD"));
    b.sh("mknod /dev/mem2 c 1 1 && echo made; head -c 1 /dev/mem2 >/dev/null 2>&1 && echo opened || echo denied");
    let out = b.run().ok("run");
    assert_contains(
        &out.stdout,
        "denied",
        "opening c 1:1 not allowed by the device cgroup",
    );
}
