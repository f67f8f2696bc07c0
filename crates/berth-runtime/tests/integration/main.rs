//! End-to-end tests of the runtime binary through runc's command line,
//! run as root on real bundles and checked from inside the container.
//! Grouped by concern like runc's bats tests; one binary (as ripgrep does)
//! for one link step.
//!
//! Run against runc to validate the tests themselves:
//! `BERTH_RUNTIME=/usr/sbin/runc cargo test -p berth-runtime --test integration`

mod harness;

mod bad_input;
mod cgroups;
mod cgroups_limits;
mod devices;
mod exec;
mod fd_leak;
mod hooks;
mod lifecycle;
mod masked_paths;
mod namespaces;
mod process;
mod rootfs;
mod rootless;
mod signals;
mod spec_fields;
mod terminal;
