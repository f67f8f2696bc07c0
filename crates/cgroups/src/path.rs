//! `linux.cgroupsPath` -> a validated cgroup path.
//!
//! The result is either
//! * **absolute** (`/a/b`): relative to the root of each hierarchy, or
//! * **relative** (`a/b`): relative to the runtime process's own cgroup in
//!   each hierarchy, resolved by [`crate::Cgroup::open`] from
//!   `/proc/self/cgroup`. On cgroup v1 the process may sit in a different
//!   cgroup per controller, so this is resolved per hierarchy, exactly as
//!   runc's fs driver does.
//!
//! Forms accepted (runc's behaviour):
//! * `None` -> `<id>` (relative: a child of the runtime's own cgroup), what
//!   runc's fs driver does without a cgroupsPath; with `systemd` set,
//!   `system.slice:berth:<id>` -> `/system.slice/berth-<id>.scope`.
//! * `"/a/b"` absolute, `"a/b"` relative.
//! * systemd form `"slice:prefix:name"` when `systemd` is set or the string
//!   has exactly two ':' -> `/<expanded slice>/<prefix>-<name>.scope`, the
//!   path systemd would give the scope, so the cgroupfs driver lands in the
//!   same place. A name ending in `.slice` is used as-is.
//!
//! Refused: any `..` component, NUL bytes, an empty result or the hierarchy
//! root itself (a container must never be given the root cgroup).

use std::path::{Component, Path, PathBuf};

use crate::CgroupError;

fn invalid(path: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// See the module documentation for the accepted forms.
pub fn resolve_cgroups_path(
    spec_path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<PathBuf, CgroupError> {
    check_id(container_id)?;
    let raw = match spec_path {
        Some(p) if !p.is_empty() => p.to_string(),
        _ if systemd => format!("system.slice:berth:{container_id}"),
        _ => container_id.to_string(),
    };
    if raw.contains('\0') {
        return Err(invalid(&raw, "contains a NUL byte"));
    }
    let candidate = if systemd || raw.matches(':').count() == 2 {
        systemd_to_fs(&raw, container_id)?
    } else {
        raw.clone()
    };
    clean(&raw, &candidate)
}

fn check_id(id: &str) -> Result<(), CgroupError> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(invalid(id, "container id must be a single path component"));
    }
    Ok(())
}

/// Normalise: drop `.` and empty components, refuse `..`, keep absoluteness.
fn clean(raw: &str, p: &str) -> Result<PathBuf, CgroupError> {
    let path = Path::new(p);
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    };
    let mut parts = 0;
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(invalid(raw, "\"..\" components are not allowed")),
            Component::Normal(s) => {
                out.push(s);
                parts += 1;
            }
            Component::Prefix(_) => return Err(invalid(raw, "unexpected path prefix")),
        }
    }
    if parts == 0 {
        return Err(invalid(raw, "resolves to the hierarchy root"));
    }
    Ok(out)
}

/// "slice:prefix:name" -> "/<slice path>/<unit>".
fn systemd_to_fs(raw: &str, container_id: &str) -> Result<String, CgroupError> {
    let parts: Vec<&str> = raw.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(
            raw,
            "systemd cgroups path must be \"slice:prefix:name\"",
        ));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let name = if name.is_empty() { container_id } else { name };
    if [name, prefix].iter().any(|s| *s == "." || *s == "..") {
        return Err(invalid(raw, "\"..\" components are not allowed"));
    }
    if name.contains('/') || prefix.contains('/') {
        return Err(invalid(raw, "unit prefix and name must not contain '/'"));
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    let slice_path = expand_slice(raw, slice)?;
    Ok(format!("{}/{unit}", slice_path.trim_end_matches('/')))
}

/// systemd's slice nesting: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice";
/// "-.slice" is the root.
pub(crate) fn expand_slice(raw: &str, slice: &str) -> Result<String, CgroupError> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(invalid(
            raw,
            format!("slice {slice:?} does not end in \".slice\""),
        ));
    };
    if slice.contains('/') {
        return Err(invalid(raw, format!("slice {slice:?} contains '/'")));
    }
    if base == "-" {
        return Ok("/".to_string());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(invalid(
            raw,
            format!("slice {slice:?} is not a valid slice name"),
        ));
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for comp in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(comp);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: Option<&str>, sd: bool) -> Result<PathBuf, CgroupError> {
        resolve_cgroups_path(p, "abc", sd)
    }

    #[test]
    fn absolute_and_relative_paths() {
        assert_eq!(r(Some("/a/b"), false).unwrap(), PathBuf::from("/a/b"));
        assert_eq!(r(Some("a/b"), false).unwrap(), PathBuf::from("a/b"));
        assert_eq!(r(Some("//a/./b/"), false).unwrap(), PathBuf::from("/a/b"));
    }

    #[test]
    fn none_is_the_id_below_own_cgroup_like_runc() {
        assert_eq!(r(None, false).unwrap(), PathBuf::from("abc"));
        assert_eq!(r(Some(""), false).unwrap(), PathBuf::from("abc"));
        assert_eq!(
            r(None, true).unwrap(),
            PathBuf::from("/system.slice/berth-abc.scope")
        );
    }

    #[test]
    fn systemd_form() {
        assert_eq!(
            r(Some("system.slice:docker:abc"), false).unwrap(),
            PathBuf::from("/system.slice/docker-abc.scope")
        );
        assert_eq!(
            r(Some("machine-foo-bar.slice:libpod:x"), true).unwrap(),
            PathBuf::from("/machine.slice/machine-foo.slice/machine-foo-bar.slice/libpod-x.scope")
        );
        assert_eq!(
            r(Some(":docker:abc"), true).unwrap(),
            PathBuf::from("/system.slice/docker-abc.scope")
        );
        assert_eq!(
            r(Some("-.slice:p:n"), true).unwrap(),
            PathBuf::from("/p-n.scope")
        );
        assert_eq!(
            r(Some("user.slice::my.slice"), true).unwrap(),
            PathBuf::from("/user.slice/my.slice")
        );
        for bad in [
            "system:docker:abc",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a/b.slice:p:n",
        ] {
            let e = r(Some(bad), true).unwrap_err();
            assert!(e.to_string().contains(bad), "error {e} should name {bad}");
        }
        // Without the systemd flag, one or three colons are a plain path.
        assert_eq!(r(Some("/a:b"), false).unwrap(), PathBuf::from("/a:b"));
    }

    #[test]
    fn dotdot_is_refused_and_named() {
        for bad in ["/a/../b", "../x", "a/..", "system.slice:p:..", "/.."] {
            let e = r(Some(bad), false).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(bad), "error {msg:?} should name {bad:?}");
        }
    }

    #[test]
    fn root_and_bad_ids_are_refused() {
        assert!(r(Some("/"), false).is_err());
        assert!(r(Some("/./"), false).is_err());
        assert!(resolve_cgroups_path(None, "..", false).is_err());
        assert!(resolve_cgroups_path(None, "a/b", false).is_err());
        assert!(resolve_cgroups_path(None, "", false).is_err());
    }
}
