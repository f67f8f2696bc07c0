//! The OCI features document that `berth-runtime features` prints.
//!
//! Callers (containerd, CRI-O, podman) read it to learn what this runtime
//! accepts in `config.json`. A features list that drifts from the code is
//! worse than none, so every list that the code already knows comes from the
//! module that implements it (capabilities, seccomp, namespace types); the
//! few lists written here are pinned against the implementation by tests.
//!
//! Per the spec, the document describes what the runtime was built to
//! support, not what this host's kernel offers.

use serde_json::{json, Value};

use crate::capabilities::all_capability_names;
use crate::seccomp::{supported_actions, supported_archs, supported_flags, supported_operators};
use crate::spec::{NamespaceType, OCI_VERSION};

/// The oldest `ociVersion` accepted in `config.json`.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// Hook names accepted in `config.json`'s `hooks`.
pub const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Generic mount options the rootfs code understands (see
/// `rootfs::options`); filesystem-specific `data` options such as
/// `mode=755` pass through to the kernel and are not listed, as the spec
/// asks.
pub const MOUNT_OPTIONS: [&str; 34] = [
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "lazytime",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

/// Annotation explaining `--systemd-cgroup`, in the style of runc's
/// `org.opencontainers.runc.*` keys.
pub const ANNOTATION_SYSTEMD: &str = "io.berth.runtime.cgroup.systemd";

fn sorted_unique(mut v: Vec<&'static str>) -> Vec<&'static str> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Namespace types as `config.json` spells them (serde's names, which are
/// what callers write; `NamespaceType::name` says "mnt" for mount).
fn namespace_names() -> Vec<String> {
    let mut names: Vec<String> = NamespaceType::ALL
        .iter()
        .filter_map(|n| serde_json::to_value(n).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    names.sort_unstable();
    names
}

/// The features document, as JSON.
pub fn features_json() -> Value {
    let namespaces = namespace_names();
    let flags = supported_flags();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": sorted_unique(MOUNT_OPTIONS.to_vec()),
        "linux": {
            "namespaces": namespaces,
            "capabilities": all_capability_names(),
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": true,
            },
            "seccomp": {
                "enabled": true,
                "actions": supported_actions(),
                "operators": supported_operators(),
                "archs": supported_archs(),
                "knownFlags": flags,
                "supportedFlags": flags,
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
        },
        "annotations": annotations(),
    })
}

fn annotations() -> Value {
    let mut a = serde_json::Map::new();
    a.insert(
        "io.berth.runtime.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    a.insert(
        ANNOTATION_SYSTEMD.into(),
        "cgroupfs only: --systemd-cgroup is accepted and a \"slice:prefix:name\" \
         cgroupsPath is mapped to the cgroupfs path systemd would use"
            .into(),
    );
    if let Some(v) = crate::seccomp::library_version() {
        a.insert("io.github.seccomp.libseccomp.version".into(), v.into());
    }
    Value::Object(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap_or_else(|| panic!("expected an array, got {v}"))
            .iter()
            .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
            .collect()
    }

    #[test]
    fn required_fields_and_versions() {
        let f = features_json();
        assert_eq!(f["ociVersionMin"], OCI_VERSION_MIN);
        assert_eq!(f["ociVersionMax"], OCI_VERSION);
        assert_eq!(strings(&f["hooks"]).len(), 6);
    }

    #[test]
    fn lists_come_from_the_implementation() {
        let f = features_json();
        let linux = &f["linux"];
        assert_eq!(
            strings(&linux["capabilities"]),
            all_capability_names(),
            "capabilities must be the capabilities module's table"
        );
        assert!(strings(&linux["capabilities"]).contains(&"CAP_SYS_ADMIN"));
        assert_eq!(strings(&linux["seccomp"]["actions"]), supported_actions());
        assert_eq!(
            strings(&linux["seccomp"]["operators"]),
            supported_operators()
        );
        assert_eq!(strings(&linux["seccomp"]["archs"]), supported_archs());
        assert!(strings(&linux["seccomp"]["archs"]).contains(&"SCMP_ARCH_X86_64"));
        assert_eq!(
            strings(&linux["namespaces"]),
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
        );
    }

    #[test]
    fn mount_options_are_sorted_unique_and_known() {
        let f = features_json();
        let opts = strings(&f["mountOptions"]);
        let mut sorted = opts.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            opts, sorted,
            "mountOptions must be sorted without duplicates"
        );
        assert_eq!(opts.len(), 34);
        for p in [
            "private",
            "rprivate",
            "shared",
            "rshared",
            "slave",
            "rslave",
            "unbindable",
            "runbindable",
        ] {
            assert!(opts.contains(&p), "{p} missing from mountOptions");
            assert!(
                crate::rootfs::propagation_flag(p).is_some(),
                "mountOptions lists {p} but rootfs does not parse it"
            );
        }
    }

    #[test]
    fn systemd_is_off_and_explained() {
        let f = features_json();
        assert_eq!(f["linux"]["cgroup"]["systemd"], false);
        assert!(f["annotations"][ANNOTATION_SYSTEMD]
            .as_str()
            .is_some_and(|s| s.contains("--systemd-cgroup")));
        for k in ["apparmor", "selinux"] {
            assert_eq!(f["linux"][k]["enabled"], false, "{k}");
        }
    }
}
