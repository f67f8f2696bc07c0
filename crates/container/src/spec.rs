//! The OCI runtime spec's `config.json`, as typed values.
//!
//! `config.json` is outside input: it is parsed once here, at the border,
//! with the JSON path of any field that fails to parse in the error, then
//! checked by [`Spec::validate`] for the rules serde cannot express
//! (absolute mount destinations, known namespace types, ...). Code further
//! in trusts these values.
//!
//! Unknown fields are ignored, as the spec requires of runtimes; a known
//! field of the wrong type is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use cgroups::LinuxResources;

/// The OCI runtime spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: field {field}: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("invalid {field} in config.json: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    #[serde(default)]
    pub user: User,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    #[serde(
        default,
        rename = "execCPUAffinity",
        skip_serializing_if = "Option::is_none"
    )]
    pub exec_cpu_affinity: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounding: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inheritable: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambient: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

/// `process.scheduler` (runtime-spec 1.2): `sched_setattr(2)`'s fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scheduler {
    pub policy: String,
    #[serde(default)]
    pub nice: i32,
    #[serde(default)]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub runtime: u64,
    #[serde(default)]
    pub deadline: u64,
    #[serde(default)]
    pub period: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IoPriority {
    pub class: String,
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub destination: PathBuf,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<LinuxResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<Personality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_offsets: Option<BTreeMap<String, TimeOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeOffset {
    #[serde(default)]
    pub secs: i64,
    #[serde(default)]
    pub nanosecs: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Personality {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// Namespace types of `linux.namespaces[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceType {
    Pid,
    Network,
    Mount,
    Ipc,
    Uts,
    User,
    Cgroup,
    Time,
}

impl NamespaceType {
    /// The `CLONE_NEW*` flag of this namespace type.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            NamespaceType::Pid => libc::CLONE_NEWPID,
            NamespaceType::Network => libc::CLONE_NEWNET,
            NamespaceType::Mount => libc::CLONE_NEWNS,
            NamespaceType::Ipc => libc::CLONE_NEWIPC,
            NamespaceType::Uts => libc::CLONE_NEWUTS,
            NamespaceType::User => libc::CLONE_NEWUSER,
            NamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
            NamespaceType::Time => 0x80, // CLONE_NEWTIME
        }
    }

    /// The file name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceType::Pid => "pid",
            NamespaceType::Network => "net",
            NamespaceType::Mount => "mnt",
            NamespaceType::Ipc => "ipc",
            NamespaceType::Uts => "uts",
            NamespaceType::User => "user",
            NamespaceType::Cgroup => "cgroup",
            NamespaceType::Time => "time",
        }
    }

    pub const ALL: [NamespaceType; 8] = [
        NamespaceType::Pid,
        NamespaceType::Network,
        NamespaceType::Mount,
        NamespaceType::Ipc,
        NamespaceType::Uts,
        NamespaceType::User,
        NamespaceType::Cgroup,
        NamespaceType::Time,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NamespaceType::Network => "network",
            other => other.proc_name(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: NamespaceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: PathBuf,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SeccompSyscall>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompSyscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

impl Spec {
    /// Read and parse `config.json` at `path`, then validate it.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let data = std::fs::read(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let spec = Spec::parse(path, &data)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parse JSON bytes; `origin` names the file in errors.
    pub fn parse(origin: &Path, data: &[u8]) -> Result<Spec, SpecError> {
        let de = &mut serde_json::Deserializer::from_slice(data);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            SpecError::Parse {
                path: origin.to_path_buf(),
                field: if field == "." {
                    "(top level)".into()
                } else {
                    field
                },
                message: inner.to_string(),
            }
        })
    }

    /// Checks the rules that types alone do not express.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.oci_version.is_empty() {
            return Err(invalid("ociVersion", "missing"));
        }
        if !self.oci_version.starts_with("1.") {
            return Err(invalid(
                "ociVersion",
                format!("{:?} is not a 1.x version", self.oci_version),
            ));
        }
        let root = self
            .root
            .as_ref()
            .ok_or_else(|| invalid("root", "missing"))?;
        if root.path.as_os_str().is_empty() {
            return Err(invalid("root.path", "empty"));
        }
        if let Some(p) = &self.process {
            if p.args.is_empty() && p.command_line.is_none() {
                return Err(invalid("process.args", "empty: nothing to run"));
            }
            if !p.cwd.is_absolute() {
                return Err(invalid(
                    "process.cwd",
                    format!("{:?} is not an absolute path", p.cwd),
                ));
            }
            for (i, r) in p.rlimits.iter().enumerate() {
                if crate::process::rlimit_resource(&r.kind).is_none() {
                    return Err(invalid(
                        format!("process.rlimits[{i}].type"),
                        format!("unknown rlimit {:?}", r.kind),
                    ));
                }
                if r.soft > r.hard {
                    return Err(invalid(
                        format!("process.rlimits[{i}]"),
                        format!("soft limit {} above hard limit {}", r.soft, r.hard),
                    ));
                }
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if !m.destination.is_absolute() {
                return Err(invalid(
                    format!("mounts[{i}].destination"),
                    format!("{:?} is not an absolute path", m.destination),
                ));
            }
        }
        if let Some(linux) = &self.linux {
            let mut seen = Vec::new();
            for (i, ns) in linux.namespaces.iter().enumerate() {
                if seen.contains(&ns.kind) {
                    return Err(invalid(
                        format!("linux.namespaces[{i}]"),
                        format!("namespace {} listed twice", ns.kind.name()),
                    ));
                }
                seen.push(ns.kind);
                if let Some(p) = &ns.path {
                    if !p.is_absolute() {
                        return Err(invalid(
                            format!("linux.namespaces[{i}].path"),
                            format!("{p:?} is not an absolute path"),
                        ));
                    }
                }
            }
            let has_userns = seen.contains(&NamespaceType::User);
            if !has_userns && (!linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty()) {
                return Err(invalid(
                    "linux.uidMappings",
                    "id mappings given without a user namespace",
                ));
            }
            if let Some(prop) = &linux.rootfs_propagation {
                if crate::rootfs::propagation_flag(prop).is_none() {
                    return Err(invalid(
                        "linux.rootfsPropagation",
                        format!("unknown propagation {prop:?}"),
                    ));
                }
            }
            if self.hostname.as_deref().is_some_and(|h| !h.is_empty())
                && !seen.contains(&NamespaceType::Uts)
            {
                return Err(invalid(
                    "hostname",
                    "set without a new uts namespace: it would change the host's",
                ));
            }
            for (i, d) in linux.devices.iter().enumerate() {
                if !d.path.is_absolute() {
                    return Err(invalid(
                        format!("linux.devices[{i}].path"),
                        format!("{:?} is not an absolute path", d.path),
                    ));
                }
                if !matches!(d.kind.as_str(), "c" | "b" | "u" | "p") {
                    return Err(invalid(
                        format!("linux.devices[{i}].type"),
                        format!("unknown device type {:?}", d.kind),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn linux(&self) -> &Linux {
        static EMPTY: std::sync::OnceLock<Linux> = std::sync::OnceLock::new();
        self.linux
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Linux::default))
    }

    /// The namespace entry of `kind`, if the container asks for one.
    pub fn namespace(&self, kind: NamespaceType) -> Option<&Namespace> {
        self.linux().namespaces.iter().find(|n| n.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Spec, SpecError> {
        let spec = Spec::parse(Path::new("config.json"), s.as_bytes())?;
        spec.validate()?;
        Ok(spec)
    }

    const MINIMAL: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/"}}"#;

    #[test]
    fn minimal_config_parses() {
        let spec = parse(MINIMAL).expect("minimal config should parse");
        assert_eq!(spec.root.unwrap().path, PathBuf::from("rootfs"));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse(r#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["sh"],"cwd":"/","user":{"uid":"zero"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("process.user.uid"), "error was: {err}");
    }

    #[test]
    fn truncated_json_is_an_error() {
        let err = parse(&MINIMAL[..20]).unwrap_err().to_string();
        assert!(err.contains("config.json"), "error was: {err}");
    }

    #[test]
    fn unknown_namespace_type_is_refused() {
        let err = parse(r#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"bogus"}]}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux.namespaces[0].type"), "error was: {err}");
    }

    #[test]
    fn relative_mount_destination_is_refused() {
        let err = parse(r#"{"ociVersion":"1.0.2","root":{"path":"r"},"mounts":[{"destination":"proc","type":"proc"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mounts[0].destination"), "error was: {err}");
    }

    #[test]
    fn missing_root_is_refused() {
        let err = parse(r#"{"ociVersion":"1.0.2"}"#).unwrap_err().to_string();
        assert!(err.contains("root"), "error was: {err}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        parse(r#"{"ociVersion":"1.0.2","root":{"path":"r"},"vendorThing":{"x":1}}"#)
            .expect("unknown fields must be ignored");
    }
}
