//! Exit codes and signals as `run` reports them.

use crate::harness::Bundle;

#[test]
fn run_exit_42() {
    let mut b = Bundle::new();
    b.sh("exit 42");
    let out = b.run();
    assert_eq!(out.code(), 42, "run `exit 42`: {out:?}");
}

/// A namespace's init ignores signals it has no handler for, so the
/// self-kill runs without a pid namespace: the shell dies of SIGTERM.
#[test]
fn run_of_process_killed_by_sigterm_exits_143() {
    let mut b = Bundle::new();
    b.remove_namespace("pid");
    b.sh("kill -TERM $$; sleep 5");
    let out = b.run();
    assert_eq!(out.code(), 143, "run of a self-SIGTERMed shell: {out:?}");
}

#[test]
fn signal_handler_in_init_receives_signal() {
    let mut b = Bundle::new();
    let host = b.host_dir();
    b.bind(&host, "/out", false);
    b.sh(
        "trap 'echo got-usr1 > /out/sig; exit 0' USR1; echo ready > /out/ready; sleep 1000 & wait",
    );
    b.create().ok("create");
    b.start().ok("start");
    for _ in 0..100 {
        if host.join("ready").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    b.rt(&["kill", &b.id, "USR1"]).ok("kill USR1");
    b.wait_status("stopped");
    let got = std::fs::read_to_string(host.join("sig")).unwrap_or_default();
    assert_eq!(got.trim(), "got-usr1", "trap output after kill USR1");
}
