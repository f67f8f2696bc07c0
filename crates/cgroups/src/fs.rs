//! Small file helpers for cgroup interface files, plus the statfs safety check.
//!
//! Every write in the crate goes through [`write`], so every error names the
//! file and the value. Cgroup files are written with a single `write(2)`
//! (no buffering, no truncation games): the kernel parses one write as one
//! command.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::CgroupError;

/// `CGROUP_SUPER_MAGIC` from `<linux/magic.h>`.
pub const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
/// `CGROUP2_SUPER_MAGIC` from `<linux/magic.h>`.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Whether files are checked to live on a cgroup filesystem before they are
/// created or written. Only the fake-tree test constructor turns this off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsCheck {
    Statfs,
    Skip,
}

/// Refuse `dir` unless it lives on cgroup or cgroup2 (checked with statfs).
pub(crate) fn ensure_cgroupfs(dir: &Path, check: FsCheck) -> Result<(), CgroupError> {
    if check == FsCheck::Skip {
        return Ok(());
    }
    let st = nix::sys::statfs::statfs(dir).map_err(|e| CgroupError::Statfs {
        path: dir.to_path_buf(),
        source: io::Error::from(e),
    })?;
    // The field type differs between libc targets; widen it.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.filesystem_type().0 as i64;
    if magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC {
        Ok(())
    } else {
        Err(CgroupError::NotCgroupFs {
            path: dir.to_path_buf(),
            magic,
        })
    }
}

/// Write `value` to `dir/file` in one write call. On a real cgroupfs the
/// file must exist: interface files are never created (a missing file means
/// a missing controller or kernel feature). Only on a fake test tree
/// (`FsCheck::Skip`) is the file created, standing in for the kernel, and
/// each write appended as a line.
pub(crate) fn write(
    dir: &Path,
    file: &str,
    value: &str,
    check: FsCheck,
) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let res = match check {
        FsCheck::Statfs => fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes())),
        // The fake tree records every write as one line, in order, so tests
        // can assert on sequences (devices rules, memsw ordering).
        FsCheck::Skip => {
            #[cfg(test)]
            JOURNAL.with(|j| j.borrow_mut().push((path.clone(), value.to_string())));
            fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
        }
    };
    res.map_err(|source| CgroupError::Write {
        path,
        value: value.to_string(),
        source,
    })
}

#[cfg(test)]
thread_local! {
    /// Every fake-tree write of this thread, in order (tests only).
    pub(crate) static JOURNAL: std::cell::RefCell<Vec<(PathBuf, String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// Read a file that may legitimately be absent (controller not enabled,
/// older kernel): `Ok(None)` when missing.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Parse a single-number file; "max" becomes `None`.
pub(crate) fn parse_u64_or_max(path: &Path, s: &str) -> Result<Option<u64>, CgroupError> {
    let t = s.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse::<u64>().map(Some).map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a number or \"max\", got {t:?}"),
    })
}

/// Read an optional single-number file ("max" and missing are both `None`).
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64_or_max(&dir.join(file), &s),
        None => Ok(None),
    }
}

/// Parse "key value" lines (cpu.stat, memory.stat, memory.events, ...).
pub(crate) fn flat_keyed(s: &str) -> impl Iterator<Item = (&str, u64)> {
    s.lines().filter_map(|l| {
        let mut it = l.split_whitespace();
        let k = it.next()?;
        let v = it.next()?.parse().ok()?;
        Some((k, v))
    })
}

pub(crate) fn keyed_value(s: &str, key: &str) -> Option<u64> {
    flat_keyed(s).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Parse a `cgroup.procs` file.
pub(crate) fn parse_procs(path: &Path, s: &str) -> Result<Vec<i32>, CgroupError> {
    s.split_whitespace()
        .map(|t| {
            t.parse::<i32>().map_err(|_| CgroupError::Parse {
                path: path.to_path_buf(),
                reason: format!("expected a pid, got {t:?}"),
            })
        })
        .collect()
}

/// Create `dir` and its missing ancestors below `root` (which must exist),
/// calling `on_new` for each directory actually created, top-down.
/// Returns the directories created.
pub(crate) fn mkdir_below(
    root: &Path,
    dir: &Path,
    mut on_new: impl FnMut(&Path) -> Result<(), CgroupError>,
) -> Result<Vec<PathBuf>, CgroupError> {
    let rel = dir
        .strip_prefix(root)
        .map_err(|_| CgroupError::InvalidPath {
            path: dir.display().to_string(),
            reason: format!("not below the hierarchy root {}", root.display()),
        })?;
    let mut cur = root.to_path_buf();
    let mut made = Vec::new();
    for comp in rel.components() {
        cur.push(comp);
        match fs::create_dir(&cur) {
            Ok(()) => {
                made.push(cur.clone());
                on_new(&cur)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Mkdir {
                    path: cur.clone(),
                    source,
                })
            }
        }
    }
    Ok(made)
}

pub(crate) fn is_not_found(e: &CgroupError) -> bool {
    match e {
        CgroupError::Write { source, .. } | CgroupError::Read { source, .. } => {
            source.kind() == io::ErrorKind::NotFound
        }
        _ => false,
    }
}

pub(crate) fn raw_os_error(e: &CgroupError) -> Option<i32> {
    match e {
        CgroupError::Write { source, .. } | CgroupError::Read { source, .. } => {
            source.raw_os_error()
        }
        _ => None,
    }
}

/// Turn a write the kernel refused (EINVAL, EBUSY, ERANGE, EOVERFLOW) into
/// [`CgroupError::Rejected`] naming the resource `field`, with `reason(errno)`
/// saying why in the user's terms; other errors pass through unchanged.
pub(crate) fn explain(
    e: CgroupError,
    field: &str,
    reason: impl FnOnce(i32) -> String,
) -> CgroupError {
    match e {
        CgroupError::Write {
            path,
            value,
            source,
        } => match source.raw_os_error() {
            Some(errno @ (libc::EINVAL | libc::EBUSY | libc::ERANGE | libc::EOVERFLOW)) => {
                CgroupError::Rejected {
                    field: field.to_string(),
                    value,
                    reason: reason(errno),
                    path,
                    source,
                }
            }
            _ => CgroupError::Write {
                path,
                value,
                source,
            },
        },
        other => other,
    }
}

/// The trimmed content of `dir/file`, or "?" when unreadable (for messages).
pub(crate) fn peek(dir: &Path, file: &str) -> String {
    read_opt(dir, file)
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".to_string())
}
