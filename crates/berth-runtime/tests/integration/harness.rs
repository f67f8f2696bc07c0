//! Shared machinery for the end-to-end tests: a busybox rootfs, an OCI
//! bundle whose config.json is modelled on `runc spec`, and a guard that
//! drives the runtime binary through runc's command line and cleans up
//! (delete --force, leaked mounts, temp dirs) even when a test panics.
//!
//! The binary comes from `BERTH_RUNTIME` if set, else the `berth-runtime`
//! built by Cargo, so the same tests validate runc and berth alike.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// How long any single runtime invocation may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The runtime under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("BERTH_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")),
    }
}

/// True when the binary under test is berth's own: asserts on wording that
/// runc does not meet are limited to it.
pub fn is_berth() -> bool {
    runtime_bin().file_name() == Some(OsStr::new("berth-runtime"))
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "integration tests need root (run as root: sudo -E cargo test -p berth-runtime \
             --test integration); euid is {euid}"
        );
    }
}

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let bb = Path::new("/bin/busybox");
        if !bb.exists() {
            panic!("/bin/busybox is missing: apt-get install busybox-static");
        }
        let out = Command::new(bb)
            .arg("--list")
            .output()
            .unwrap_or_else(|e| panic!("run /bin/busybox --list: {e}"));
        assert!(out.status.success(), "busybox --list failed: {:?}", out);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.contains('/'))
            .collect()
    })
}

/// Populate `rootfs` with busybox, its applets, passwd/group and empty
/// mount points. busybox is copied (not hardlinked) so that a test that
/// chowns the rootfs never touches the host's /bin/busybox.
pub fn build_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/user",
    ] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in busybox_applets() {
        if applet != "busybox" {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         user:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// A config.json equivalent to `runc spec` (plus the cgroup namespace and
/// mount) with `terminal: false`.
pub fn default_config(hostname: &str, cgroups_path: &str) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [PATH_ENV, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// A temp dir readable by anyone (tempfile makes them 0700, which a
/// container root mapped to another uid could not traverse).
pub fn open_tempdir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Result of one runtime invocation.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// Panics with the full output unless the command succeeded.
    pub fn ok(self, what: &str) -> Self {
        assert!(
            self.success(),
            "{what}: expected success, got {:?}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
    /// Panics unless the command failed.
    pub fn fails(self, what: &str) -> Self {
        assert!(
            !self.success(),
            "{what}: expected a non-zero exit, got success\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Wait for `child` with a timeout; kill it by PID and panic if it hangs.
pub fn wait_timeout(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: timed out after {timeout:?} (runtime pid {} killed)",
                child.id()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn read_back(mut f: fs::File) -> String {
    let mut buf = Vec::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Run `cmd` to completion with stdout/stderr captured in anonymous files
/// (not pipes: a detached container may keep them open long after the
/// runtime exits). Unless the caller set them, stdout/stderr are captured.
pub fn run_captured(mut cmd: Command, what: &str) -> Outcome {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    cmd.stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let status = wait_timeout(&mut child, TIMEOUT, what);
    Outcome {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique name `berth-it-<pid>-<n>` for containers, cgroups, netns.
pub fn unique_name() -> String {
    format!(
        "berth-it-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// One container: its bundle, state root, id, and the config to write.
/// Drop force-deletes the container, unmounts anything leaked under the
/// bundle, reports a leftover cgroup, and removes the temp dirs.
pub struct Bundle {
    pub id: String,
    pub config: Value,
    dir: TempDir,
    root: TempDir,
    /// Host dirs made for the test (removed on drop, after the container).
    pub scratch: Vec<TempDir>,
    /// Processes the test started (killed by PID on drop).
    pub helpers: Vec<Child>,
}

impl Default for Bundle {
    fn default() -> Self {
        Self::new()
    }
}

impl Bundle {
    pub fn new() -> Self {
        require_root();
        let id = unique_name();
        let dir = open_tempdir("berth-it-bundle-");
        let root = open_tempdir("berth-it-root-");
        build_rootfs(&dir.path().join("rootfs"));
        let config = default_config(&id, &format!("/{id}"));
        Bundle {
            id,
            config,
            dir,
            root,
            scratch: Vec::new(),
            helpers: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
    pub fn state_root(&self) -> &Path {
        self.root.path()
    }
    pub fn cgroups_path(&self) -> String {
        format!("/{}", self.id)
    }

    /// A fresh host directory (mode 0777) kept alive as long as the bundle.
    pub fn host_dir(&mut self) -> PathBuf {
        let d = open_tempdir("berth-it-host-");
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let p = d.path().to_path_buf();
        self.scratch.push(d);
        p
    }

    /// Set process.args.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }
    /// Set process.args to `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }
    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }
    /// Bind-mount host dir `src` at `dest` (read-write unless `ro`).
    pub fn bind(&mut self, src: &Path, dest: &str, ro: bool) -> &mut Self {
        let mut opts = vec!["rbind"];
        if ro {
            opts.push("ro");
        }
        self.add_mount(json!({"destination": dest, "type": "bind",
            "source": src.to_str().unwrap(), "options": opts}))
    }
    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        let nss = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        nss.retain(|n| n["type"] != ty);
        self
    }

    pub fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.dir().join("config.json"), text).unwrap();
    }

    /// `<bin> --root R <args>` with stdin from /dev/null.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(self.state_root()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run `<bin> --root R <args>` to completion, capturing output.
    pub fn rt<S: AsRef<OsStr>>(&self, args: &[S]) -> Outcome {
        let what = format!(
            "{} {}",
            runtime_bin().display(),
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        run_captured(self.command(args), &what)
    }

    /// Write config.json and `run --bundle DIR ID` in the foreground.
    pub fn run(&self) -> Outcome {
        self.write_config();
        let b = self.dir().to_str().unwrap().to_string();
        self.rt(&["run", "--bundle", &b, &self.id])
    }

    /// Write config.json and `create --bundle DIR ID`.
    pub fn create(&self) -> Outcome {
        self.write_config();
        let b = self.dir().to_str().unwrap().to_string();
        self.rt(&["create", "--bundle", &b, &self.id])
    }

    pub fn start(&self) -> Outcome {
        self.rt(&["start", &self.id])
    }

    /// `state ID` parsed as JSON (panics if it fails).
    pub fn state(&self) -> Value {
        let out = self.rt(&["state", &self.id]).ok("state");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", out.stdout))
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap_or("").to_string()
    }

    pub fn pid(&self) -> i32 {
        let st = self.state();
        st["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("state has no pid: {st}")) as i32
    }

    /// Poll `state` until status == `want`, panicking after 10 s.
    pub fn wait_status(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.status();
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "container {}: expected status {want:?}, still {got:?}",
                    self.id
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// create + start of a container that sleeps, ready for exec/kill.
    pub fn start_sleeper(&mut self) {
        self.args(&["sleep", "1000"]);
        self.create().ok("create sleeper");
        self.start().ok("start sleeper");
        self.wait_status("running");
    }

    /// Entries of the state root other than hidden files (what a failed
    /// create must not leave behind).
    pub fn state_entries(&self) -> Vec<String> {
        fs::read_dir(self.state_root())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// cgroup dirs named after this container that exist on the host.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        cgroup_dirs_named(&self.id)
    }
}

/// Host cgroup directories `/sys/fs/cgroup/*/<name>` (v1) or
/// `/sys/fs/cgroup/<name>` (v2) that exist.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let direct = Path::new("/sys/fs/cgroup").join(name);
    if direct.is_dir() {
        found.push(direct);
    }
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join(name);
            if p.is_dir() {
                found.push(p);
            }
        }
    }
    found
}

/// Mount points (field 5 of mountinfo) of this process containing `needle`.
pub fn host_mounts_containing(needle: &str) -> Vec<String> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mi.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.contains(needle))
        .map(|s| s.to_string())
        .collect()
}

fn lazy_unmount(path: &str) {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: c is a valid NUL-terminated path; umount2 only reads it.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = run_captured(
            {
                let mut c = Command::new(runtime_bin());
                c.arg("--root")
                    .arg(self.state_root())
                    .args(["delete", "--force", &self.id])
                    .stdin(Stdio::null());
                c
            },
            "cleanup delete --force",
        );
        for h in &mut self.helpers {
            let _ = h.kill();
            let _ = h.wait();
        }
        // Kernel cgroup removal can lag the container's death briefly.
        let mut left = self.leftover_cgroups();
        for _ in 0..20 {
            if left.is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
            left = self.leftover_cgroups();
        }
        if !left.is_empty() {
            eprintln!(
                "LEAK: cgroup dirs left by {}: {:?} (removing)",
                self.id, left
            );
            for d in &left {
                let _ = fs::remove_dir(d);
            }
        }
        let mut paths: Vec<String> = vec![self.dir().to_string_lossy().into_owned()];
        paths.extend(
            self.scratch
                .iter()
                .map(|d| d.path().to_string_lossy().into_owned()),
        );
        let mut seen = HashSet::new();
        for p in &paths {
            for mp in host_mounts_containing(p).into_iter().rev() {
                if seen.insert(mp.clone()) {
                    eprintln!("LEAK: host mount {mp} left by {} (unmounting)", self.id);
                    lazy_unmount(&mp);
                }
            }
        }
    }
}

/// Parse a `CapXxx:` hex mask from /proc/<pid>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim())
}

/// Inode (`ns:[N]`) of one of the test process's namespaces.
pub fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Assert `hay` contains `needle`, printing both.
#[track_caller]
pub fn assert_contains(hay: &str, needle: &str, what: &str) {
    assert!(
        hay.contains(needle),
        "{what}: expected output containing {needle:?}, got:\n{hay}"
    );
}
