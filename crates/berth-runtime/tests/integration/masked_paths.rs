//! maskedPaths and readonlyPaths: /proc files that leak host information
//! are hidden, /proc/sys cannot be written.

use serde_json::json;

use crate::harness::{assert_contains, Bundle};

/// /proc/kcore is the classic example but this kernel may lack it; every
/// masked /proc file that exists on the host must read empty inside.
#[test]
fn masked_files_read_empty() {
    let candidates = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ];
    let present: Vec<&str> = candidates
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    assert!(
        !present.is_empty(),
        "none of {candidates:?} exists on the host"
    );
    let mut b = Bundle::new();
    let script: String = present
        .iter()
        .map(|p| format!("echo {p} $(wc -c < {p}) $(test -c {p} && echo char); "))
        .collect();
    b.sh(&script);
    let out = b.run().ok("run");
    for p in &present {
        let want = format!("{p} 0 char");
        assert!(
            out.stdout.lines().any(|l| l == want),
            "masked {p}: expected {want:?} (empty, /dev/null), got:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn masked_directory_is_empty_and_readonly() {
    let mut b = Bundle::new();
    b.config["linux"]["maskedPaths"] = json!(["/sys/firmware"]);
    b.sh("ls -A /sys/firmware | wc -l; touch /sys/firmware/x 2>/dev/null && echo wrote || echo refused");
    let out = b.run().ok("run");
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["0", "refused"],
        "masked /sys/firmware: {}",
        out.stdout
    );
}

#[test]
fn readonly_proc_sys_refuses_writes() {
    let mut b = Bundle::new();
    b.sh("cat /proc/sys/kernel/hostname; echo x > /proc/sys/kernel/hostname 2>/dev/null && echo wrote || echo refused; \
          grep ' /proc/sys ' /proc/self/mountinfo");
    let out = b.run().ok("run");
    assert_contains(&out.stdout, &b.id, "/proc/sys is still readable");
    assert_contains(&out.stdout, "refused", "write to read-only /proc/sys");
    let mi = out.stdout.lines().last().unwrap_or("");
    assert!(
        mi.split(' ')
            .nth(5)
            .is_some_and(|o| o.split(',').any(|x| x == "ro")),
        "/proc/sys mount options not ro: {mi}"
    );
}
