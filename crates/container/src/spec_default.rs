//! The `config.json` that `berth-runtime spec` writes.
//!
//! It reproduces `runc spec` (and `runc spec --rootless`) field by field,
//! except `ociVersion`, which is the version this runtime implements:
//! people and scripts start from runc's template, and tools that compare
//! runtimes expect the same starting point. Changing a default here changes
//! what every new bundle gets, so the lists are pinned by the tests below.

use std::path::{Path, PathBuf};

use cgroups::LinuxDeviceCgroup;

use crate::spec::{
    Capabilities, IdMapping, Linux, LinuxResources, Mount, Namespace, NamespaceType, Process,
    Rlimit, Root, Spec, User, OCI_VERSION,
};

/// Capabilities of runc's template: enough to run a shell, nothing more.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// Paths hidden from the container (a file becomes /dev/null, a directory
/// an empty read-only tmpfs): kernel memory, debug and hardware details.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Paths bind-mounted read-only over themselves: kernel knobs in /proc.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default spec: runc's template, with hostname "berth". `rootless`
/// gives the `spec --rootless` variant (a user namespace mapping the
/// caller's euid/egid to root, no network namespace, /sys bind-mounted, no
/// device cgroup rules).
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec {
        oci_version: OCI_VERSION.to_string(),
        root: Some(Root {
            path: PathBuf::from("rootfs"),
            readonly: true,
        }),
        process: Some(default_process()),
        hostname: Some("berth".to_string()),
        mounts: default_mounts(),
        linux: Some(default_linux()),
        ..Spec::default()
    };
    if rootless {
        make_rootless(&mut spec);
    }
    spec
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn default_process() -> Process {
    let caps = Some(strings(&DEFAULT_CAPS));
    Process {
        terminal: true,
        user: User::default(),
        args: strings(&["sh"]),
        env: strings(&[
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ]),
        cwd: PathBuf::from("/"),
        capabilities: Some(Capabilities {
            bounding: caps.clone(),
            effective: caps.clone(),
            inheritable: None,
            permitted: caps.clone(),
            ambient: caps,
        }),
        rlimits: vec![Rlimit {
            kind: "RLIMIT_NOFILE".to_string(),
            hard: 1024,
            soft: 1024,
        }],
        no_new_privileges: true,
        ..Process::default()
    }
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: PathBuf::from(destination),
        kind: Some(kind.to_string()),
        source: Some(PathBuf::from(source)),
        options: strings(options),
        ..Mount::default()
    }
}

fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

fn default_linux() -> Linux {
    let namespaces = [
        NamespaceType::Pid,
        NamespaceType::Network,
        NamespaceType::Ipc,
        NamespaceType::Uts,
        NamespaceType::Mount,
    ];
    Linux {
        resources: Some(LinuxResources {
            devices: Some(vec![LinuxDeviceCgroup {
                allow: false,
                access: Some("rwm".to_string()),
                ..LinuxDeviceCgroup::default()
            }]),
            ..LinuxResources::default()
        }),
        namespaces: namespaces
            .iter()
            .map(|&kind| Namespace { kind, path: None })
            .collect(),
        masked_paths: MASKED_PATHS.iter().map(PathBuf::from).collect(),
        readonly_paths: READONLY_PATHS.iter().map(PathBuf::from).collect(),
        ..Linux::default()
    }
}

/// What `runc spec --rootless` changes: an unprivileged user cannot create
/// a network namespace with a useful device, mount a fresh sysfs, pick the
/// tty group, or write device cgroup rules.
fn make_rootless(spec: &mut Spec) {
    let one = |host_id: u32| IdMapping {
        container_id: 0,
        host_id,
        size: 1,
    };
    if let Some(linux) = spec.linux.as_mut() {
        linux.resources = None;
        linux.uid_mappings = vec![one(nix::unistd::geteuid().as_raw())];
        linux.gid_mappings = vec![one(nix::unistd::getegid().as_raw())];
        linux
            .namespaces
            .retain(|n| n.kind != NamespaceType::Network);
        linux.namespaces.push(Namespace {
            kind: NamespaceType::User,
            path: None,
        });
    }
    for m in &mut spec.mounts {
        if m.destination == Path::new("/sys") {
            *m = mount(
                "/sys",
                "none",
                "/sys",
                &["rbind", "nosuid", "noexec", "nodev", "ro"],
            );
        }
        m.options.retain(|o| o != "gid=5");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(spec: &Spec) -> Spec {
        let json = serde_json::to_vec_pretty(spec).expect("a Spec always serializes");
        let back = Spec::parse(Path::new("config.json"), &json)
            .unwrap_or_else(|e| panic!("default spec does not parse back: {e}"));
        back.validate()
            .unwrap_or_else(|e| panic!("default spec does not validate: {e}"));
        back
    }

    /// Namespace types as config.json spells them.
    fn namespace_names(spec: &Spec) -> Vec<String> {
        let v = serde_json::to_value(&spec.linux().namespaces).expect("serializes");
        let types = v.as_array().expect("namespaces is an array").iter();
        types
            .map(|n| n["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn destinations(spec: &Spec) -> Vec<String> {
        let dest = |m: &Mount| m.destination.display().to_string();
        spec.mounts.iter().map(dest).collect()
    }

    #[test]
    fn default_spec_roundtrips_and_validates() {
        let spec = roundtrip(&default_spec(false));
        assert_eq!(spec.oci_version, OCI_VERSION);
        let process = spec.process.as_ref().expect("process is set");
        assert_eq!(process.args, ["sh"]);
        assert!(process.terminal && process.no_new_privileges);
        assert_eq!(spec.hostname.as_deref(), Some("berth"));
        assert!(spec.root.as_ref().is_some_and(|r| r.readonly));
    }

    #[test]
    fn default_spec_matches_runc_lists() {
        let spec = default_spec(false);
        assert_eq!(
            namespace_names(&spec),
            ["pid", "network", "ipc", "uts", "mount"]
        );
        assert_eq!(
            destinations(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        let linux = spec.linux();
        let masked: Vec<_> = linux.masked_paths.iter().map(|p| p.to_str()).collect();
        let want: Vec<_> = MASKED_PATHS.iter().map(|p| Some(*p)).collect();
        assert_eq!(masked, want);
        assert_eq!(linux.readonly_paths.len(), READONLY_PATHS.len());
        assert!(linux
            .readonly_paths
            .contains(&PathBuf::from("/proc/sysrq-trigger")));
    }

    /// The JSON text as `runc spec` prints it for the fields tools read.
    #[test]
    fn default_spec_json_has_runc_spellings() {
        let v = serde_json::to_value(default_spec(false)).expect("serializes");
        assert_eq!(
            v["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
        assert_eq!(
            v["process"]["rlimits"],
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
        );
        assert_eq!(
            v["process"]["capabilities"]["ambient"],
            serde_json::json!(DEFAULT_CAPS)
        );
        assert!(v["process"]["capabilities"].get("inheritable").is_none());
        assert_eq!(v["mounts"][2]["options"][5], "gid=5");
    }

    #[test]
    fn rootless_spec_matches_runc_rootless() {
        let spec = roundtrip(&default_spec(true));
        assert_eq!(
            namespace_names(&spec),
            ["pid", "ipc", "uts", "mount", "user"]
        );
        let linux = spec.linux();
        assert!(linux.resources.is_none(), "rootless has no device rules");
        let euid = nix::unistd::geteuid().as_raw();
        assert_eq!(
            linux.uid_mappings,
            [IdMapping {
                container_id: 0,
                host_id: euid,
                size: 1
            }]
        );
        let sys = &spec.mounts[5];
        assert_eq!(sys.kind.as_deref(), Some("none"));
        assert_eq!(sys.options, ["rbind", "nosuid", "noexec", "nodev", "ro"]);
        assert!(!spec.mounts[2].options.iter().any(|o| o == "gid=5"));
        assert_eq!(destinations(&spec), destinations(&default_spec(false)));
    }
}
