//! Spec fields the other modules do not cover end to end, each checked the
//! way a user would see it from inside the container (or, for ioprio, from
//! the host): seccomp, sysctl, rootfs propagation, personality, time
//! namespace offsets, domainname, --no-pivot, --no-new-keyring,
//! annotations, consoleSize, ioPriority, umask/cwd defaults, missing
//! masked/readonly paths and a few mount shapes.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{assert_contains, is_berth, wait_timeout, Bundle, TIMEOUT};
use crate::terminal::{drain, recv_fd, wait_for_text};

const ARCHES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

fn mkdir_denied_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ARCHES,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[test]
fn seccomp_errno_rule_denies_mkdir_only() {
    for nnp in [true, false] {
        let mut b = Bundle::new();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = mkdir_denied_profile();
        b.sh("echo before; mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched");
        let out = b.run().ok(&format!("run with seccomp, nnp={nnp}"));
        let what = format!("seccomp mkdir (noNewPrivileges {nnp})");
        assert_contains(&out.stdout, "before\n", &what);
        assert_contains(&out.stdout, "rc=1\n", &what);
        assert_contains(&out.stdout, "touched\n", &what);
        assert_contains(&out.stderr, "Operation not permitted", &what);
    }
}

#[test]
fn seccomp_default_errno_with_tiny_allow_list_cannot_run_sh() {
    for nnp in [true, false] {
        let mut b = Bundle::new();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ARCHES,
            "syscalls": [{"names": ["execve", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
        });
        b.sh("echo should-not-print");
        let out = b.run();
        assert!(
            !out.success(),
            "sh ran under a profile that denies nearly everything (nnp={nnp}): {out:?}"
        );
        assert!(
            !out.stdout.contains("should-not-print"),
            "sh ran: {}",
            out.stdout
        );
    }
}

#[test]
fn sysctl_is_set_in_the_new_netns() {
    let mut b = Bundle::new();
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.args(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    let out = b.run().ok("run with sysctl");
    assert_eq!(out.stdout.trim(), "1", "ip_forward inside");
}

#[test]
fn unknown_sysctl_fails_create_naming_it() {
    let mut b = Bundle::new();
    b.config["linux"]["sysctl"] = json!({"net.ipv4.berth_no_such_key": "1"});
    b.args(&["true"]);
    let out = b.create().fails("create with an unknown sysctl");
    assert_contains(&out.stderr, "berth_no_such_key", "error names the key");
    assert!(
        b.state_entries().is_empty(),
        "state left: {:?}",
        b.state_entries()
    );
}

/// Optional fields (shared:N, master:N ...) of the mountinfo line for `/`.
fn root_propagation_tags(mountinfo: &str) -> Vec<String> {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no mountinfo line for /:\n{mountinfo}"));
    line.split(' ')
        .skip(6)
        .take_while(|f| *f != "-")
        .map(str::to_string)
        .collect()
}

/// Bind-mounts a directory onto itself as a shared mount on the host, so a
/// slave copy of it has a master.
fn shared_self_bind(dir: &Path) -> Unmount {
    let c = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid path; null fstype/data are allowed for binds.
    let rc = unsafe {
        libc::mount(
            c.as_ptr(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "bind {dir:?}: {}", std::io::Error::last_os_error());
    let guard = Unmount(dir.to_path_buf());
    // SAFETY: as above; only the propagation flag changes.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_SHARED,
            std::ptr::null(),
        )
    };
    let err = std::io::Error::last_os_error();
    assert_eq!(rc, 0, "make-shared {dir:?}: {err}");
    guard
}

fn root_tags_with(propagation: &str, shared_source: bool) -> Vec<String> {
    let mut b = Bundle::new();
    let _host = shared_source.then(|| shared_self_bind(&b.rootfs()));
    b.config["linux"]["rootfsPropagation"] = json!(propagation);
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = b
        .run()
        .ok(&format!("run with rootfsPropagation {propagation}"));
    root_propagation_tags(&out.stdout)
}

/// The rootfs is a shared mount on the host, so that how the container's
/// `/` relates to it is visible: "private" cuts it off, "rslave" receives
/// (master:N), "shared" makes `/` a peer group of its own.
#[test]
fn rootfs_propagation_shared_private_slave() {
    let tags = root_tags_with("private", true);
    assert!(tags.is_empty(), "private: / tags {tags:?}");
    let tags = root_tags_with("rslave", true);
    assert!(
        tags.iter().any(|t| t.starts_with("master:"))
            && !tags.iter().any(|t| t.starts_with("shared:")),
        "rslave: / tags {tags:?}"
    );
    // Non-recursive "slave" only changes the host's / copy: the rootfs
    // mount stays shared, so (as in runc) it is made private before
    // pivot_root and `/` must not propagate back to the host.
    let tags = root_tags_with("slave", true);
    assert!(
        !tags.iter().any(|t| t.starts_with("shared:")),
        "slave: / tags {tags:?}"
    );
    if !is_berth() {
        return; // runc 1.1 applies "shared" before it privatises the rootfs's
                // parent and bind-mounts it, so its / ends up private (fixed in
                // runc 1.2, which re-applies the flag after pivot_root).
    }
    let tags = root_tags_with("shared", false);
    assert!(
        tags.iter().any(|t| t.starts_with("shared:")),
        "shared: / tags {tags:?}"
    );
}

#[test]
fn personality_linux32_reports_a_32_bit_machine() {
    if !is_berth() {
        return; // runc 1.1 predates linux.personality (runtime-spec 1.2)
    }
    let mut b = Bundle::new();
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.args(&["uname", "-m"]);
    let out = b.run().ok("run with personality LINUX32");
    let m = out.stdout.trim();
    assert!(
        ["i386", "i486", "i586", "i686", "armv7l", "armv8l"].contains(&m),
        "uname -m under LINUX32: {m:?}"
    );
}

#[test]
fn time_namespace_boottime_offset() {
    assert!(
        Path::new("/proc/self/ns/time").exists(),
        "this kernel lacks time namespaces (/proc/self/ns/time missing)"
    );
    if !is_berth() {
        return; // runc 1.1 knows no "time" namespace (added in runc 1.2)
    }
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400, "nanosecs": 0}});
    b.args(&["cat", "/proc/uptime"]);
    let out = b.run().ok("run with a time namespace");
    let up: f64 = out
        .stdout
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("/proc/uptime: {:?}", out.stdout));
    assert!(up >= 86400.0, "uptime {up} does not include the offset");
}

#[test]
fn domainname_is_set() {
    if !is_berth() {
        return; // runc 1.1 ignores domainname (setdomainname came in runc 1.2)
    }
    let mut b = Bundle::new();
    b.config["domainname"] = json!("berth.example");
    b.args(&["cat", "/proc/sys/kernel/domainname"]);
    let out = b.run().ok("run with domainname");
    assert_eq!(out.stdout.trim(), "berth.example", "domainname");
}

fn run_with_flag(b: &Bundle, flag: &str) -> crate::harness::Outcome {
    b.write_config();
    let bundle = b.dir().to_str().unwrap().to_string();
    b.rt(&["run", flag, "--bundle", &bundle, &b.id])
}

#[test]
fn no_pivot_still_confines_to_the_rootfs() {
    let mut b = Bundle::new();
    fs::write(b.rootfs().join("marker"), "in-rootfs").unwrap();
    // The bundle dir is a host path under /tmp; inside, /tmp is the rootfs's.
    let host_only = b.dir().to_str().unwrap().to_string();
    b.sh(&format!(
        "cat /marker; echo; test -e {host_only} && echo host-visible; echo done"
    ));
    let out = run_with_flag(&b, "--no-pivot").ok("run --no-pivot");
    assert_eq!(out.stdout, "in-rootfs\ndone\n", "--no-pivot view of /");
}

#[test]
fn new_session_keyring_unless_no_new_keyring() {
    let keys = |flag: Option<&str>| {
        let mut b = Bundle::new();
        let masked = b.config["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.retain(|p| p != "/proc/keys");
        b.args(&["cat", "/proc/keys"]);
        let out = match flag {
            Some(f) => run_with_flag(&b, f),
            None => b.run(),
        }
        .ok(&format!("run {flag:?}"));
        (b.id.clone(), out.stdout)
    };
    let (id, text) = keys(None);
    assert!(
        text.lines()
            .any(|l| l.contains("keyring") && l.ends_with(&format!("{id}: empty"))),
        "default: a session keyring named after {id}:\n{text}"
    );
    let (id, text) = keys(Some("--no-new-keyring"));
    assert!(
        !text.contains(&id),
        "--no-new-keyring: no keyring named after {id}:\n{text}"
    );
}

#[test]
fn annotations_in_state_and_hook_stdin() {
    let mut b = Bundle::new();
    let logdir = b.host_dir();
    let log = logdir.join("state.json");
    b.config["annotations"] = json!({"org.berth.test": "yes", "other": "v 2"});
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {}", log.display())]}]});
    b.start_sleeper();
    let st = b.state();
    assert_eq!(st["annotations"]["org.berth.test"], "yes", "state: {st}");
    assert_eq!(st["annotations"]["other"], "v 2", "state: {st}");
    let text = fs::read_to_string(&log).unwrap_or_default();
    let hook: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("hook stdin is not JSON ({e}): {text:?}"));
    assert_eq!(hook["annotations"]["org.berth.test"], "yes", "hook: {hook}");
    assert_eq!(hook["id"], b.id.as_str(), "hook: {hook}");
}

/// create with --console-socket, start, and return the terminal output
/// once `END` shows up.
fn console_output(b: &Bundle) -> String {
    b.write_config();
    let sock_path = b.dir().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let bundle = b.dir().to_str().unwrap().to_string();
    let sock = sock_path.to_str().unwrap().to_string();
    let mut c = b.command(&[
        "create",
        "--console-socket",
        &sock,
        "--bundle",
        &bundle,
        &b.id,
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let conn = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(st) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    panic!("create exited ({st:?}) before the console socket: {err}");
                }
                assert!(Instant::now() < deadline, "no console socket connection");
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept on console socket: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let buf = drain(recv_fd(conn.as_raw_fd()));
    let st = wait_timeout(&mut child, TIMEOUT, "create --console-socket");
    assert!(st.success(), "create --console-socket: {st:?}");
    b.start().ok("start");
    wait_for_text(&buf, "END", "console output")
}

#[test]
fn console_size_is_applied_to_the_terminal() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 37, "width": 111});
    b.sh("echo size=$(stty size); echo END");
    let text = console_output(&b);
    assert_contains(&text, "size=37 111", "stty size");
}

#[test]
fn io_priority_idle_is_seen_by_ionice() {
    if !is_berth() {
        return; // runc 1.1 predates process.ioPriority (runtime-spec 1.2)
    }
    let mut b = Bundle::new();
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    b.start_sleeper();
    let out = Command::new("ionice")
        .args(["-p", &b.pid().to_string()])
        .output()
        .unwrap_or_else(|e| panic!("run ionice (util-linux): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ionice: {out:?}");
    assert_eq!(text.trim(), "idle", "io priority of the container process");
}

#[test]
fn umask_defaults_to_0022() {
    let mut b = Bundle::new();
    b.sh("umask");
    let out = b.run().ok("run without umask");
    assert_eq!(out.stdout.trim(), "0022", "default umask");
}

/// runc creates a missing cwd (0755) rather than failing.
#[test]
fn missing_cwd_is_created() {
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/does/not/exist");
    b.sh("pwd; stat -c %a .");
    let out = b.run().ok("run with a missing cwd");
    assert_eq!(out.stdout, "/does/not/exist\n755\n", "cwd");
}

#[test]
fn missing_masked_and_readonly_paths_are_skipped() {
    let mut b = Bundle::new();
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/proc/berth-no-such-file"));
    b.config["linux"]["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/berth/no/such/dir"));
    b.sh("test -e /proc/berth-no-such-file || test -e /berth || echo ok");
    let out = b.run().ok("run with missing masked/readonly paths");
    assert_eq!(out.stdout, "ok\n", "nothing created for missing paths");
}

#[test]
fn bind_file_onto_missing_parents() {
    let mut b = Bundle::new();
    let dir = b.host_dir();
    let file = dir.join("data.txt");
    fs::write(&file, "file-content").unwrap();
    b.add_mount(json!({"destination": "/a/b/c/data.txt", "type": "bind",
        "source": file.to_str().unwrap(), "options": ["bind", "ro"]}));
    b.sh("cat /a/b/c/data.txt; echo; test -f /a/b/c/data.txt && echo file");
    let out = b.run().ok("run with a file bind mount");
    assert_eq!(out.stdout, "file-content\nfile\n", "bound file");
}

#[test]
fn nosuid_nodev_noexec_show_in_mountinfo() {
    let mut b = Bundle::new();
    b.add_mount(
        json!({"destination": "/mnt/flags", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec"]}),
    );
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = b.run().ok("run with a nosuid,nodev,noexec mount");
    let line = out
        .stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/mnt/flags"))
        .unwrap_or_else(|| panic!("no /mnt/flags in mountinfo:\n{}", out.stdout));
    let opts: Vec<&str> = line.split(' ').nth(5).unwrap_or("").split(',').collect();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "{o} missing from {line}");
    }
}

#[test]
fn rbind_keeps_submounts() {
    let mut b = Bundle::new();
    let dir = b.host_dir();
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    let c = CString::new(sub.to_str().unwrap()).unwrap();
    let tmpfs = CString::new("tmpfs").unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings; the bundle's
    // drop lazily unmounts anything left under its host dirs.
    let rc = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            c.as_ptr(),
            tmpfs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    let _unmount = Unmount(sub.clone());
    fs::write(sub.join("in-submount"), "x").unwrap();
    b.bind(&dir, "/mnt/r", false);
    b.sh(
        "test -f /mnt/r/sub/in-submount && echo seen; grep -c ' /mnt/r/sub ' /proc/self/mountinfo",
    );
    let out = b.run().ok("run with an rbind of a dir with a submount");
    assert_eq!(out.stdout, "seen\n1\n", "submount under the rbind");
}

/// Lazily unmounts a host mount made by a test, even if it panics.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let c = CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid path; umount2 only reads it.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
