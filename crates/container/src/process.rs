//! Process attributes (stub: being written).
pub fn rlimit_resource(name: &str) -> Option<libc::c_int> {
    let _ = name;
    None
}
