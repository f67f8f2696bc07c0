//! berth's OCI runtime: from a bundle (`config.json` + rootfs) to an isolated
//! process, and the lifecycle around it (create, start, state, kill, delete,
//! exec).
//!
//! The binary `berth-runtime` parses runc's command line and calls into
//! [`create`], [`lifecycle`] and [`exec`]; everything it does is reachable
//! from tests of this crate.

use std::path::PathBuf;

pub mod capabilities;
pub mod console;
pub mod create;
pub mod error;
pub mod exec;
pub mod features;
pub mod hooks;
mod init;
pub mod lifecycle;
pub mod log;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod scheduler;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod spec_default;
pub mod state;
pub mod support;
mod sync;
pub mod update;

pub use error::{ContainerError, Result};

/// Where the runtime keeps state, and how it names cgroups.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// runc's `--root`: `<root>/<id>/state.json` per container.
    pub root: PathBuf,
    /// runc's `--systemd-cgroup`: `cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

impl Runtime {
    /// Compiled seccomp filters (`<root>/#seccomp`: `#` is never part of a
    /// container id, so the name cannot clash with a container).
    pub fn seccomp_cache_dir(&self) -> PathBuf {
        self.root.join("#seccomp")
    }

    /// The default state root: `/run/berth-runtime` for root,
    /// `$XDG_RUNTIME_DIR/berth-runtime` otherwise.
    pub fn default_root() -> PathBuf {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
                return PathBuf::from(dir).join("berth-runtime");
            }
        }
        PathBuf::from("/run/berth-runtime")
    }
}
