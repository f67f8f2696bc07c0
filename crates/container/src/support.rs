//! Spec fields this runtime cannot apply yet are refused, never ignored
//! (a container that silently lacks its AppArmor profile or its scheduling
//! class is worse than one that does not start). Like runc, a security
//! label is only an error when its LSM is enabled on the host.

use std::path::Path;

use crate::error::{ContainerError, Result};
use crate::spec::{Process, Spec};

fn unsupported(field: &str, why: &str) -> ContainerError {
    ContainerError::Invalid(format!("{field}: {why}"))
}

/// Checks the container-wide fields.
pub fn check_spec(spec: &Spec) -> Result<()> {
    let linux = spec.linux();
    if linux.intel_rdt.is_some() {
        return Err(unsupported(
            "linux.intelRdt",
            "Intel RDT (resctrl) is not supported by berth-runtime",
        ));
    }
    if linux.mount_label.as_deref().is_some_and(|l| !l.is_empty()) && selinux_enabled() {
        return Err(unsupported(
            "linux.mountLabel",
            "SELinux labels are not supported by berth-runtime yet",
        ));
    }
    if let Some(p) = &spec.process {
        check_process(p)?;
    }
    Ok(())
}

/// Checks the fields of one process (the init's or an exec'd one).
pub fn check_process(p: &Process) -> Result<()> {
    if p.apparmor_profile.as_deref().is_some_and(|a| !a.is_empty()) && apparmor_enabled() {
        return Err(unsupported(
            "process.apparmorProfile",
            "AppArmor profiles are not supported by berth-runtime yet",
        ));
    }
    if p.selinux_label.as_deref().is_some_and(|l| !l.is_empty()) && selinux_enabled() {
        return Err(unsupported(
            "process.selinuxLabel",
            "SELinux labels are not supported by berth-runtime yet",
        ));
    }
    if p.exec_cpu_affinity.is_some() {
        return Err(unsupported(
            "process.execCPUAffinity",
            "not supported by berth-runtime yet",
        ));
    }
    Ok(())
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.2.0","root":{{"path":"r"}},"process":{{"args":["sh"],"cwd":"/"{extra}}}}}"#
        );
        Spec::parse(Path::new("config.json"), json.as_bytes()).expect("spec")
    }

    #[test]
    fn exec_cpu_affinity_is_refused_naming_the_field() {
        let err = check_spec(&spec(r#","execCPUAffinity":{"initial":"0"}"#))
            .expect_err("must refuse")
            .to_string();
        assert!(err.contains("process.execCPUAffinity"), "{err}");
    }

    #[test]
    fn plain_process_passes() {
        check_spec(&spec("")).expect("nothing unsupported");
    }
}
