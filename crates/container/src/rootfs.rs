//! Root filesystem setup (stub: being written).
pub fn propagation_flag(s: &str) -> Option<nix::mount::MsFlags> {
    let _ = s;
    None
}
