//! A tiny HTTP registry that answers exactly what a test tells it to: the
//! way to serve a blob whose digest lies, a truncated blob, or a manifest
//! that is not JSON. Plain HTTP on 127.0.0.1; TLS probes are hung up on.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// path -> (content type, body)
pub type Routes = HashMap<String, (String, Vec<u8>)>;

pub struct FakeRegistry {
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    pub fn start(routes: Routes) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake registry");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let _ = serve(conn, &routes, &requests2);
                }
            }
        });
        FakeRegistry {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, routes: &Routes, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut peek = [0u8; 1];
    if conn.peek(&mut peek)? == 1 && peek[0] == 0x16 {
        return Ok(()); // a TLS ClientHello: not spoken here
    }
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!("{method} {path}"));
    let mut out = conn;
    let (status, ctype, body) = if path == "/v2/" {
        ("200 OK", "application/json".to_string(), b"{}".to_vec())
    } else if let Some((ctype, body)) = routes.get(&path) {
        ("200 OK", ctype.clone(), body.clone())
    } else {
        (
            "404 Not Found",
            "application/json".to_string(),
            br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#.to_vec(),
        )
    };
    write!(out, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    if method != "HEAD" {
        out.write_all(&body)?;
    }
    out.flush()?;
    let _ = reader.read(&mut [0u8; 1]);
    Ok(())
}

/// Routes serving `img` under `repo` with tag `tag`.
pub fn routes_for(repo: &str, tag: &str, img: &crate::harness::BuiltImage) -> Routes {
    let mut routes = Routes::new();
    routes.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        (img.manifest_type.clone(), img.manifest.clone()),
    );
    routes.insert(
        format!("/v2/{repo}/blobs/{}", img.config_digest),
        ("application/octet-stream".into(), img.config.clone()),
    );
    for (desc, blob) in &img.layers {
        routes.insert(
            format!("/v2/{repo}/blobs/{}", desc.digest),
            ("application/octet-stream".into(), blob.clone()),
        );
    }
    routes
}
