//! The error of every lifecycle operation: one variant per module it may
//! come from, so the text always names what failed and on what.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::NamespaceError),
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Caps(#[from] crate::capabilities::CapsError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{op}: {source}")]
    Sys { op: &'static str, source: io::Error },
    /// An error the container's init (or exec'd process) reported.
    #[error("{0}")]
    Init(String),
    /// A command that does not fit the container's state or options.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContainerError {
    let path = path.to_path_buf();
    move |source| ContainerError::Io { op, path, source }
}

pub(crate) fn sys_err(op: &'static str) -> impl FnOnce(io::Error) -> ContainerError {
    move |source| ContainerError::Sys { op, source }
}

pub(crate) fn errno(op: &'static str) -> ContainerError {
    ContainerError::Sys {
        op,
        source: io::Error::last_os_error(),
    }
}
