//! The registry client against a real registry (Debian's docker-registry,
//! started per test on 127.0.0.1) and against small fake servers for what a
//! well-behaved registry never does (token auth, 5xx, cut connections,
//! ignored ranges).

#[path = "common/registry.rs"]
mod test_registry;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image::auth::Credentials;
use image::digest::Digest;
use image::manifest::{
    Descriptor, Manifest, ParsedManifest, MEDIA_OCI_CONFIG, MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
};
use image::reference::Reference;
use image::registry::{into_registry_error, AuthSource, ClientOptions, RegistryClient};
use test_registry::TestRegistry;

macro_rules! require_registry {
    () => {
        assert!(
            TestRegistry::available(),
            "/usr/bin/docker-registry is not installed: apt-get install -y docker-registry apache2-utils (scripts/test does)"
        );
    };
}

fn client(auth: AuthSource) -> RegistryClient {
    RegistryClient::new(ClientOptions {
        auth,
        initial_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    })
}

/// Deterministic incompressible-looking bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn reference(registry: &str, repo: &str, tag: &str) -> Reference {
    Reference::parse(&format!("{registry}/{repo}:{tag}")).expect("test reference parses")
}

/// Push a config + one layer + an OCI manifest under `tag`.
fn push_image(
    c: &RegistryClient,
    r: &Reference,
    layer: &[u8],
) -> (Descriptor, Descriptor, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_desc = Descriptor::of(MEDIA_OCI_CONFIG, config);
    let layer_desc = Descriptor::of(MEDIA_OCI_LAYER_GZIP, layer);
    assert!(
        c.push_blob(r, &config_desc, &config[..])
            .expect("push config"),
        "config uploaded"
    );
    assert!(
        c.push_blob(r, &layer_desc, layer).expect("push layer"),
        "layer uploaded"
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: vec![layer_desc.clone()],
        subject: None,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).expect("serialise manifest");
    let digest = c
        .put_manifest(r, &bytes, MEDIA_OCI_MANIFEST)
        .expect("put manifest");
    assert_eq!(digest, Digest::of(&bytes));
    (config_desc, layer_desc, bytes)
}

#[test]
fn push_then_pull_back_from_a_real_registry() {
    require_registry!();
    let reg = TestRegistry::start();
    let c = client(AuthSource::Anonymous);
    let r = reference(&reg.addr, "test/app", "v1");
    let layer = noise(300_000, 1);
    let (config_desc, layer_desc, manifest_bytes) = push_image(&c, &r, &layer);

    // A second push of the same blob is skipped (HEAD says it exists).
    assert!(
        !c.push_blob(&r, &layer_desc, &layer[..]).unwrap(),
        "existing blob must be skipped"
    );
    assert!(c.blob_exists(&r, &layer_desc.digest).unwrap());
    assert!(!c.blob_exists(&r, &Digest::of(b"absent")).unwrap());

    let fetched = c.get_manifest(&r).expect("get manifest by tag");
    assert_eq!(fetched.bytes, manifest_bytes);
    assert_eq!(fetched.media_type, MEDIA_OCI_MANIFEST);
    assert_eq!(fetched.digest, Digest::of(&manifest_bytes));
    let by_digest = c
        .get_manifest(&r.with_digest(fetched.digest.clone()))
        .expect("get by digest");
    assert_eq!(by_digest.bytes, manifest_bytes);
    let ParsedManifest::Manifest(m) = fetched.parse().unwrap() else {
        panic!("expected an image manifest")
    };
    assert_eq!(m.layers, vec![layer_desc.clone()]);

    assert_eq!(
        c.fetch_blob(&r, &config_desc).unwrap().len() as u64,
        config_desc.size
    );
    let mut got = Vec::new();
    c.open_blob(&r, &layer_desc)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == layer, "layer bytes differ after a round trip");
}

#[test]
fn tls_verify_false_accepts_a_self_signed_certificate() {
    require_registry!();
    let reg = TestRegistry::start_with_self_signed_tls();
    let r = reference(&reg.addr, "tls/app", "v1");
    let data = noise(4096, 7);
    let desc = Descriptor::of("application/octet-stream", &data);
    let insecure = RegistryClient::new(ClientOptions {
        auth: AuthSource::Anonymous,
        tls_verify: false,
        initial_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    });
    insecure
        .push_blob(&r, &desc, &data[..])
        .unwrap_or_else(|e| {
            panic!(
                "push over unverified HTTPS: {e}\nregistry log:\n{}",
                reg.log()
            )
        });
    assert_eq!(
        insecure
            .fetch_blob(&r, &desc)
            .expect("fetch over unverified HTTPS"),
        data
    );
    let verifying = client(AuthSource::Anonymous);
    assert!(
        verifying.fetch_blob(&r, &desc).is_err(),
        "a verifying client must not accept the self-signed certificate"
    );
}

#[test]
fn errors_name_registry_repository_digest_and_status() {
    require_registry!();
    let reg = TestRegistry::start();
    let c = client(AuthSource::Anonymous);
    let r = reference(&reg.addr, "test", "latest");
    let missing = Descriptor::of(MEDIA_OCI_LAYER_GZIP, b"never pushed");
    let err = c
        .open_blob(&r, &missing)
        .err()
        .expect("missing blob must fail");
    eprintln!("example error: {err}");
    let want = format!(
        "fetch blob {} from {}/test: HTTP 404 Not Found",
        missing.digest, reg.addr
    );
    assert!(
        err.to_string().starts_with(&want),
        "got {err}\nwanted it to start with {want}"
    );
    assert!(err.is_not_found());

    let err = c.get_manifest(&r).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "fetch manifest latest from {}/test: HTTP 404 Not Found",
            reg.addr
        )),
        "{err}"
    );

    // A descriptor that lies about the size is refused, not silently used.
    let layer = noise(5000, 2);
    push_image(&c, &r, &layer);
    let mut short = Descriptor::of(MEDIA_OCI_LAYER_GZIP, &layer);
    short.size -= 1;
    let err = c
        .open_blob(&r, &short)
        .err()
        .expect("size mismatch must fail")
        .to_string();
    assert!(
        err.contains("expected 4999 bytes, the registry sent 5000"),
        "{err}"
    );
}

#[test]
fn mount_links_a_blob_between_repositories() {
    require_registry!();
    let reg = TestRegistry::start();
    let c = client(AuthSource::Anonymous);
    let a = reference(&reg.addr, "team/a", "1");
    let b = reference(&reg.addr, "team/b", "1");
    let layer = noise(10_000, 3);
    let (_, layer_desc, _) = push_image(&c, &a, &layer);
    assert!(!c.blob_exists(&b, &layer_desc.digest).unwrap());
    assert!(
        c.mount_blob(&b, "team/a", &layer_desc.digest)
            .expect("mount"),
        "201 expected"
    );
    assert!(c.blob_exists(&b, &layer_desc.digest).unwrap());
    let unknown = Digest::of(b"nowhere");
    assert!(
        !c.mount_blob(&b, "team/a", &unknown)
            .expect("mount fallback"),
        "202 expected"
    );
}

#[test]
fn basic_auth_registry_accepts_good_and_refuses_bad_credentials() {
    require_registry!();
    let reg = TestRegistry::start_with_htpasswd("alice", "wonderland");
    let good = client(AuthSource::Static(Credentials::new("alice", "wonderland")));
    let r = reference(&reg.addr, "private/app", "v1");
    let layer = noise(20_000, 4);
    push_image(&good, &r, &layer);
    assert!(good.get_manifest(&r).is_ok());
    good.check_login(&reg.addr, &Credentials::new("alice", "wonderland"))
        .expect("good login");

    let err = good
        .check_login(&reg.addr, &Credentials::new("alice", "wrong"))
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "log in to {} as alice: HTTP 401 Unauthorized",
            reg.addr
        )),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong"),
        "the password must not appear: {msg}"
    );

    let bad = client(AuthSource::Static(Credentials::new("alice", "wrong")));
    let err = bad.get_manifest(&r).unwrap_err();
    eprintln!("example error: {err}");
    assert!(err.is_unauthorized(), "{err}");
    assert!(
        err.to_string().contains("check the user name and password"),
        "{err}"
    );
    let anon = client(AuthSource::Anonymous);
    let err = anon.get_manifest(&r).unwrap_err().to_string();
    assert!(
        err.contains("HTTP 401") && err.contains("berth login"),
        "{err}"
    );
}

#[test]
fn blob_resumes_with_range_after_the_connection_is_cut() {
    require_registry!();
    let reg = TestRegistry::start();
    let c = client(AuthSource::Anonymous);
    let r = reference(&reg.addr, "test/big", "v1");
    let layer = noise(1_000_000, 5);
    let (_, layer_desc, _) = push_image(&c, &r, &layer);

    let proxy = CutProxy::start(&reg.addr, 100_000);
    let via_proxy = reference(&proxy.addr, "test/big", "v1");
    let mut reader = c
        .open_blob(&via_proxy, &layer_desc)
        .expect("open through proxy");
    let mut got = Vec::new();
    reader
        .read_to_end(&mut got)
        .expect("read resumes after the cut");
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the proxy should have cut a connection"
    );
    assert_eq!(reader.resumes(), 1, "one resume expected");
    assert_eq!(got.len(), layer.len());
    assert!(got == layer, "resumed bytes differ");
}

// ---------------------------------------------------------------------
// Fake servers

/// A TCP proxy that, once, cuts the first connection carrying more than
/// `cut_after` bytes from the server.
struct CutProxy {
    addr: String,
    cut: Arc<AtomicBool>,
}

impl CutProxy {
    fn start(upstream: &str, cut_after: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let (up, flag) = (upstream.to_string(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let (mut c2, mut s2) = (c2, s2);
                    let _ = io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(Shutdown::Write);
                });
                let flag = flag.clone();
                std::thread::spawn(move || pump_and_cut(server, client, cut_after, &flag));
            }
        });
        CutProxy { addr, cut }
    }
}

fn pump_and_cut(mut from: TcpStream, mut to: TcpStream, cut_after: usize, cut: &AtomicBool) {
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sent + n > cut_after && !cut.swap(true, Ordering::SeqCst) {
            let _ = to.write_all(&buf[..cut_after - sent]);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = to.shutdown(Shutdown::Write);
}

struct FakeRequest {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

struct FakeResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close after this many body bytes (Content-Length still says all).
    truncate_at: Option<usize>,
}

impl FakeResponse {
    fn new(status: u16, body: &[u8]) -> FakeResponse {
        FakeResponse {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
            truncate_at: None,
        }
    }

    fn header(mut self, k: &str, v: &str) -> FakeResponse {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

type Handler = Arc<dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync>;

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1. TLS client
/// hellos are answered by closing, so the client falls back to HTTP.
fn fake_server(make: impl FnOnce(String) -> Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = make(addr.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let h = handler.clone();
            std::thread::spawn(move || serve_one(stream, &*h));
        }
    });
    addr
}

fn serve_one(stream: TcpStream, handler: &(dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync)) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if reader
        .fill_buf()
        .map(|b| b.first() == Some(&0x16))
        .unwrap_or(true)
    {
        return; // TLS handshake or nothing: hang up
    }
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let resp = handler(&FakeRequest {
        method: method.clone(),
        path,
        headers,
    });
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if method != "HEAD" {
        let end = resp.truncate_at.unwrap_or(resp.body.len());
        let _ = out.write_all(&resp.body[..end]);
    }
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Both);
}

fn manifest_body() -> Vec<u8> {
    let config = Descriptor::of(MEDIA_OCI_CONFIG, b"{}");
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "config": config, "layers": []}))
        .unwrap()
}

#[test]
fn bearer_token_flow_caches_tokens_per_scope() {
    let body = manifest_body();
    let token_calls = Arc::new(AtomicUsize::new(0));
    let token_auth = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let (calls, seen, served) = (token_calls.clone(), token_auth.clone(), body.clone());
    let addr = fake_server(move |addr| {
        Arc::new(move |req: &FakeRequest| {
            assert_eq!(req.method, "GET");
            if req.path.starts_with("/token?") {
                calls.fetch_add(1, Ordering::SeqCst);
                seen.lock()
                    .unwrap()
                    .push(req.headers.get("authorization").cloned());
                assert!(req.path.contains("service=fake"), "{}", req.path);
                assert!(
                    req.path.contains("scope=repository%3Aorg%2Fapp%3Apull"),
                    "{}",
                    req.path
                );
                return FakeResponse::new(200, br#"{"token":"T1","expires_in":300}"#);
            }
            if req.headers.get("authorization").map(String::as_str) != Some("Bearer T1") {
                let challenge = format!(
                    "Bearer realm=\"http://{addr}/token\",service=\"fake\",scope=\"repository:org/app:pull\""
                );
                return FakeResponse::new(
                    401,
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                )
                .header("WWW-Authenticate", &challenge);
            }
            FakeResponse::new(200, &served).header("Content-Type", MEDIA_OCI_MANIFEST)
        })
    });
    let r = reference(&addr, "org/app", "v1");
    let anon = client(AuthSource::Anonymous);
    assert_eq!(anon.get_manifest(&r).expect("anonymous token").bytes, body);
    assert_eq!(anon.get_manifest(&r).expect("cached token").bytes, body);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        1,
        "the token must be cached"
    );
    let with_creds = client(AuthSource::Static(Credentials::new("bob", "pw")));
    with_creds.get_manifest(&r).expect("token with credentials");
    let seen = token_auth.lock().unwrap().clone();
    assert_eq!(
        seen[0], None,
        "anonymous token request sends no credentials"
    );
    assert_eq!(
        seen[1].as_deref(),
        Some("Basic Ym9iOnB3"),
        "credentials go to the token realm"
    );
}

#[test]
fn retries_5xx_and_429_then_gives_up() {
    let body = manifest_body();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h, served) = (hits.clone(), body.clone());
    let addr = fake_server(move |_| {
        Arc::new(move |req: &FakeRequest| {
            if req.path.contains("/broken/") {
                return FakeResponse::new(500, b"");
            }
            match h.fetch_add(1, Ordering::SeqCst) {
                0 => FakeResponse::new(503, b""),
                1 => FakeResponse::new(429, b"").header("Retry-After", "0"),
                _ => FakeResponse::new(200, &served).header("Content-Type", MEDIA_OCI_MANIFEST),
            }
        })
    });
    let c = client(AuthSource::Anonymous);
    let got = c
        .get_manifest(&reference(&addr, "ok/app", "v1"))
        .expect("succeeds on the third try");
    assert_eq!(got.bytes, body);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let err = c
        .get_manifest(&reference(&addr, "broken/app", "v1"))
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
}

#[test]
fn resume_copes_with_a_server_ignoring_range_and_refuses_a_wrong_range() {
    let data = noise(50_000, 6);
    let desc = Descriptor::of(MEDIA_OCI_LAYER_GZIP, &data);
    let mode_wrong_range = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicUsize::new(0));
    let (d, h, wrong) = (data.clone(), hits.clone(), mode_wrong_range.clone());
    let addr = fake_server(move |_| {
        Arc::new(move |req: &FakeRequest| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            if n % 2 == 0 {
                let mut r = FakeResponse::new(200, &d);
                r.truncate_at = Some(20_000);
                return r;
            }
            assert_eq!(
                req.headers.get("range").map(String::as_str),
                Some("bytes=20000-")
            );
            if wrong.load(Ordering::SeqCst) {
                return FakeResponse::new(206, &d[10_000..])
                    .header("Content-Range", "bytes 10000-49999/50000");
            }
            FakeResponse::new(200, &d) // range ignored: the client skips ahead
        })
    });
    let c = client(AuthSource::Anonymous);
    let r = reference(&addr, "x/y", "1");
    let mut got = Vec::new();
    let mut reader = c.open_blob(&r, &desc).unwrap();
    reader.read_to_end(&mut got).expect("resume by skipping");
    assert!(got == data, "bytes differ after a 200 resume");
    assert_eq!(reader.resumes(), 1);

    mode_wrong_range.store(true, Ordering::SeqCst);
    let mut reader = c.open_blob(&r, &desc).unwrap();
    let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
    let e = into_registry_error(e, || "read".into()).to_string();
    assert!(e.contains("asked to resume at byte 20000"), "{e}");
    assert!(
        e.starts_with(&format!("fetch blob {} from {addr}/x/y", desc.digest)),
        "{e}"
    );
}

#[test]
fn fetch_blob_refuses_content_with_the_wrong_digest() {
    let claimed = Descriptor::of(MEDIA_OCI_CONFIG, b"{\"a\":1}");
    let addr = fake_server(|_| Arc::new(|_: &FakeRequest| FakeResponse::new(200, b"{\"a\":2}")));
    let c = client(AuthSource::Anonymous);
    let err = c
        .fetch_blob(&reference(&addr, "x/y", "1"), &claimed)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "fetch blob {} from {addr}/x/y: content has digest sha256:",
            claimed.digest
        )),
        "{err}"
    );
    assert!(
        err.ends_with(&format!("expected {}", claimed.digest)),
        "{err}"
    );
}

#[test]
fn a_manifest_that_is_not_json_fails_clearly() {
    let addr = fake_server(|_| {
        Arc::new(|_: &FakeRequest| {
            FakeResponse::new(200, b"<html>oops</html>").header("Content-Type", MEDIA_OCI_MANIFEST)
        })
    });
    let fetched = client(AuthSource::Anonymous)
        .get_manifest(&reference(&addr, "x/y", "1"))
        .expect("bytes are fetched");
    let err = fetched.parse().unwrap_err().to_string();
    assert!(err.starts_with("manifest is not valid JSON"), "{err}");
}
