//! The container process: env, cwd, user and groups, umask, rlimits,
//! no_new_privs, capability sets, oom_score_adj.

use serde_json::json;

use crate::harness::{assert_contains, is_berth, status_field, Bundle, PATH_ENV};

#[test]
fn env_is_exactly_the_configured_env() {
    let mut b = Bundle::new();
    b.config["process"]["env"] = json!([PATH_ENV, "FOO=bar baz", "EMPTY="]);
    b.args(&["env"]);
    let out = b.run().ok("run");
    assert_contains(&out.stdout, "FOO=bar baz", "env");
    assert_contains(&out.stdout, "EMPTY=\n", "env");
    assert!(
        !out.stdout.contains("CARGO"),
        "host env leaked into the container:\n{}",
        out.stdout
    );
}

#[test]
fn cwd_is_the_configured_dir() {
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/tmp");
    b.args(&["pwd"]);
    let out = b.run().ok("run");
    assert_eq!(out.stdout.trim(), "/tmp", "pwd");
}

#[test]
fn user_and_additional_gids() {
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    b.sh("id -u; id -g; id -G");
    let out = b.run().ok("run");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "uid: {}", out.stdout);
    assert_eq!(lines.get(1), Some(&"1000"), "gid: {}", out.stdout);
    let groups: Vec<&str> = lines.get(2).unwrap_or(&"").split_whitespace().collect();
    for g in ["10", "20"] {
        assert!(
            groups.contains(&g),
            "supplementary group {g} missing: {groups:?}"
        );
    }
    assert!(!groups.contains(&"0"), "root group kept: {groups:?}");
}

#[test]
fn umask_is_applied() {
    let mut b = Bundle::new();
    b.config["process"]["user"]["umask"] = json!(0o027);
    b.args(&["sh", "-c", "umask"]);
    let out = b.run().ok("run");
    assert_eq!(out.stdout.trim(), "0027", "umask");
}

#[test]
fn rlimit_nofile_soft_and_hard() {
    let mut b = Bundle::new();
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]);
    b.sh("ulimit -Sn; ulimit -Hn");
    let out = b.run().ok("run");
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["512", "1000"],
        "nofile soft/hard"
    );
}

#[test]
fn rlimit_above_hard_limit_fails_create() {
    let mut b = Bundle::new();
    let big = 1_048_576u64;
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": big, "hard": big}]);
    let mut host = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut host) };
    if host.rlim_max >= big {
        eprintln!(
            "skipped: host nofile hard limit {} is not below {big}",
            host.rlim_max
        );
        return;
    }
    b.args(&["true"]);
    let out = b.create().fails("create with nofile above the hard limit");
    if is_berth() {
        assert!(
            out.stderr.contains("RLIMIT_NOFILE") || out.stderr.contains("nofile"),
            "error should name the rlimit: {}",
            out.stderr
        );
    }
    assert!(
        b.state_entries().is_empty(),
        "state left: {:?}",
        b.state_entries()
    );
}

fn proc_status(b: &mut Bundle) -> String {
    b.args(&["cat", "/proc/self/status"]);
    b.run().ok("run").stdout
}

#[test]
fn no_new_privileges_on_and_off() {
    let mut b = Bundle::new();
    let st = proc_status(&mut b);
    assert_eq!(
        status_field(&st, "NoNewPrivs"),
        Some("1"),
        "noNewPrivileges: true"
    );

    let mut b = Bundle::new();
    b.config["process"]["noNewPrivileges"] = json!(false);
    let st = proc_status(&mut b);
    assert_eq!(
        status_field(&st, "NoNewPrivs"),
        Some("0"),
        "noNewPrivileges: false"
    );
}

fn cap_mask(names: &[&str]) -> String {
    let bit = |n: &str| match n {
        "CAP_CHOWN" => 0,
        "CAP_KILL" => 5,
        "CAP_SETGID" => 6,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_AUDIT_WRITE" => 29,
        other => panic!("add {other} to cap_mask"),
    };
    format!(
        "{:016x}",
        names.iter().fold(0u64, |m, n| m | (1u64 << bit(n)))
    )
}

/// As a non-root user the kernel keeps exactly the configured sets across
/// exec (permitted and effective come from the ambient set), so each set
/// is observable on its own.
#[test]
fn capability_sets_match_config_for_non_root() {
    let mut b = Bundle::new();
    let amb = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inh = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"];
    let bnd = [
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_CHOWN",
        "CAP_AUDIT_WRITE",
        "CAP_SETGID",
    ];
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = json!({
        "bounding": bnd, "effective": amb, "permitted": amb,
        "inheritable": inh, "ambient": amb
    });
    let st = proc_status(&mut b);
    for (field, want) in [
        ("CapBnd", cap_mask(&bnd)),
        ("CapInh", cap_mask(&inh)),
        ("CapAmb", cap_mask(&amb)),
        ("CapPrm", cap_mask(&amb)),
        ("CapEff", cap_mask(&amb)),
    ] {
        assert_eq!(
            status_field(&st, field),
            Some(want.as_str()),
            "{field} in\n{st}"
        );
    }
}

/// Root gets permitted = effective = bounding across exec.
#[test]
fn capability_sets_for_root() {
    let mut b = Bundle::new();
    let bnd = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    b.config["process"]["capabilities"] =
        json!({"bounding": bnd, "effective": bnd, "permitted": bnd});
    let st = proc_status(&mut b);
    for (field, want) in [
        ("CapBnd", cap_mask(&bnd)),
        ("CapPrm", cap_mask(&bnd)),
        ("CapEff", cap_mask(&bnd)),
        ("CapInh", cap_mask(&[])),
        ("CapAmb", cap_mask(&[])),
    ] {
        assert_eq!(
            status_field(&st, field),
            Some(want.as_str()),
            "{field} in\n{st}"
        );
    }
}

#[test]
fn oom_score_adj_is_raised() {
    let mut b = Bundle::new();
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.args(&["cat", "/proc/self/oom_score_adj"]);
    let out = b.run().ok("run");
    assert_eq!(out.stdout.trim(), "500", "oom_score_adj");
}

#[test]
fn scheduler_policy_is_applied() {
    if !is_berth() {
        return; // runc 1.1 predates process.scheduler (runtime-spec 1.2)
    }
    let mut b = Bundle::new();
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    // Field 41 of /proc/self/stat is the policy (SCHED_BATCH = 3), 19 the nice value.
    b.args(&["sh", "-c", "cut -d' ' -f19,41 /proc/self/stat"]);
    let out = b.run().ok("run");
    assert_eq!(out.stdout.trim(), "7 3", "nice and policy of the process");
}

#[test]
fn exec_cpu_affinity_is_refused_not_ignored() {
    if !is_berth() {
        return; // runc 1.1 ignores fields it does not know
    }
    let mut b = Bundle::new();
    b.config["process"]["execCPUAffinity"] = json!({"initial": "0"});
    b.args(&["true"]);
    let out = b.run().fails("create with execCPUAffinity");
    assert!(
        out.stderr.contains("process.execCPUAffinity"),
        "the error names the field: {}",
        out.stderr
    );
}
