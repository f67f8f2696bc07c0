//! A real registry for tests: Debian's `docker-registry` (distribution
//! 2.8) on a free 127.0.0.1 port, storing into a temp dir, killed by PID
//! when the guard drops (also when the test panics).
//!
//! Needs `apt-get install -y docker-registry apache2-utils` (htpasswd).
//! `TestRegistry::available()` lets a test fail with the fix where it is absent.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct TestRegistry {
    /// `127.0.0.1:PORT`, usable as the registry part of a reference.
    pub addr: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Whether the registry binary is installed.
    pub fn available() -> bool {
        Path::new(REGISTRY_BIN).exists()
    }

    /// An open registry (no auth).
    pub fn start() -> TestRegistry {
        TestRegistry::launch(None)
    }

    /// A registry requiring HTTP basic auth for `user`/`pass`.
    pub fn start_with_htpasswd(user: &str, pass: &str) -> TestRegistry {
        TestRegistry::launch(Some((user, pass)))
    }

    /// A registry serving HTTPS with a self-signed certificate for
    /// 127.0.0.1 (made with openssl), so clients must skip verification.
    pub fn start_with_self_signed_tls() -> TestRegistry {
        TestRegistry::launch_with(None, true)
    }

    /// Where the registry stores its data (to corrupt blobs in tests).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(auth: Option<(&str, &str)>) -> TestRegistry {
        TestRegistry::launch_with(auth, false)
    }

    fn launch_with(auth: Option<(&str, &str)>, tls: bool) -> TestRegistry {
        let mut dir = tempfile::Builder::new()
            .prefix("berth-test-registry-")
            .tempdir()
            .expect("create temp dir for the registry");
        let mut auth_section = String::new();
        if let Some((user, pass)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd (apt-get install -y apache2-utils)");
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd file");
            auth_section = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let mut tls_section = String::new();
        if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("run openssl (apt-get install -y openssl)");
            assert!(
                out.status.success(),
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tls_section = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        // Try a few ports: another process may take the one we picked
        // between probing it and the registry binding it.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n{tls_section}{auth_section}",
                    dir.path().join("data").display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log"))
                .expect("create registry log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log fd"))
                .stderr(log)
                .spawn()
                .expect("start /usr/bin/docker-registry (apt-get install -y docker-registry)");
            let mut reg = TestRegistry { addr, child, dir };
            if reg.wait_ready() {
                return reg;
            }
            reg.stop();
            dir = reg.into_dir();
        }
        panic!("docker-registry did not start; see its log in the temp dir");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_get_status(&self.addr, "/v2/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn stop(&mut self) {
        // Child::kill signals this child's own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("temp dir");
        let dir = std::mem::replace(&mut self.dir, placeholder);
        drop(self);
        dir
    }

    /// The registry's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// Status code of a plain `GET path`, or None if nothing answers.
fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split(' ').nth(1)?.parse().ok()
}
