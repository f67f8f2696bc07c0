//! berth's OCI runtime: from a bundle (`config.json` + rootfs) to an isolated
//! process, and the lifecycle around it (create, start, state, kill, delete,
//! exec).
//!
//! The binary `berth-runtime` parses runc's command line and calls into
//! [`lifecycle`]; everything it does is reachable from tests of this crate.

pub mod capabilities;
pub mod console;
pub mod hooks;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
