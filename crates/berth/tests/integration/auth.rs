//! `login` / `logout` against a registry with htpasswd auth, and pushing
//! and pulling with the stored credentials.

use std::io::Write;
use std::process::Stdio;

use crate::harness::*;

#[test]
fn login_push_pull_logout_with_htpasswd() {
    if !crate::registry::TestRegistry::available() || !have("htpasswd") {
        return;
    }
    let reg = crate::registry::TestRegistry::start_with_htpasswd("alice", "s3cret");
    let config = tempfile::Builder::new()
        .prefix("berth-it-docker-config-")
        .tempdir()
        .expect("temp");
    let root = Root::new();
    let with_config = |args: &[&str]| {
        let mut c = root.command(args);
        c.env("DOCKER_CONFIG", config.path());
        c
    };
    let login = |password: &str| {
        let mut child = with_config(&["login", "-u", "alice", "--password-stdin", &reg.addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn login");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write password");
        child.wait_with_output().expect("login")
    };
    let bad = login("wrong");
    assert_eq!(
        bad.status.code(),
        Some(125),
        "a wrong password fails: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let good = login("s3cret");
    assert!(
        good.status.success(),
        "login: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("Login Succeeded"));
    let stored =
        std::fs::read_to_string(config.path().join("config.json")).expect("config.json written");
    assert!(
        stored.contains(&reg.addr),
        "credentials stored for the registry: {stored}"
    );

    let tar = LayerTar::new().file("hello", b"auth").finish();
    let tgz = root.path().join("rootfs.tgz");
    std::fs::write(&tgz, compress(&tar, Codec::Gzip)).expect("write");
    let name = format!("{}/private/app:1", reg.addr);
    root.ok(&["import", tgz.to_str().expect("utf8"), &name]);
    let out = with_config(&["push", &name]).output().expect("push");
    assert!(
        out.status.success(),
        "push with stored credentials: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Root::new();
    let mut pull = other.command(&["pull", "-q", &name]);
    pull.env("DOCKER_CONFIG", config.path());
    let out = pull.output().expect("pull");
    assert!(
        out.status.success(),
        "pull with stored credentials: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = with_config(&["logout", &reg.addr])
        .output()
        .expect("logout");
    assert!(out.status.success());
    let third = Root::new();
    let mut pull = third.command(&["pull", "-q", &name]);
    pull.env("DOCKER_CONFIG", config.path());
    let out = pull.output().expect("pull");
    assert_eq!(
        out.status.code(),
        Some(125),
        "after logout the private image is refused"
    );
}
