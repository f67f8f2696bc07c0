//! berth integration tests: the `berth` binary against real registries
//! (Debian's `docker-registry` on 127.0.0.1) and a small fake registry for
//! hostile answers. One test binary (ripgrep's layout): one link step.
//! Tests that need a tool that is not installed print why and pass.

#[path = "../../../image/tests/common/registry.rs"]
mod registry;

mod archive;
mod auth;
mod fake_registry;
mod harness;
mod hostile;
mod images;
mod interop;
mod pull;
mod robustness;
