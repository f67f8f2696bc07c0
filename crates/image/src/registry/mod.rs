//! A blocking client for the distribution API v2 (what `docker pull` and
//! `docker push` speak), on `ureq` with rustls and the system's CA roots.
//!
//! Why it looks like this:
//! - One `RegistryClient` is shared by the pull threads (it is `Clone`,
//!   `Send` and `Sync`); bearer tokens are cached per registry and scope
//!   (`repository:NAME:pull[,push]`) so parallel layer fetches log in once.
//! - Authentication is driven by the server: a request goes out with what
//!   we have; a 401 names the scheme (`Bearer realm=..,service=..` or
//!   `Basic`), we get a token (anonymously or with the user's credentials)
//!   or use basic auth, and send the request once more.
//! - HTTPS always, except registries that are loopback addresses,
//!   `localhost`, listed insecure or used with `tls_verify: false`: those
//!   are probed once over HTTPS and fall back to plain HTTP (what Docker
//!   does for insecure registries). With `tls_verify: false` the HTTPS
//!   itself accepts any certificate (see `insecure.rs`).
//! - Transient failures (5xx, 429, connection errors) are retried with
//!   exponential backoff, a bounded number of times. Blob bodies resume
//!   with `Range` (see `blob.rs`).
//! - Every error names the operation, registry, repository and digest or
//!   tag, and the HTTP status with the registry's own error code.

mod blob;
pub mod challenge;
mod error;
mod insecure;
mod token;

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use blob::BlobReader;
use error::ureq_error_kind;
pub use error::{into_registry_error, ErrorKind, RegistryError};
use token::{basic_header, Token};

use crate::auth::Credentials;
use crate::digest::{Digest, DigestReader};
use crate::manifest::{
    Descriptor, ManifestError, ParsedManifest, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES,
};
use crate::reference::{api_host, Reference};
use challenge::{parse_challenges, Challenge};

/// Where the client finds credentials.
#[derive(Clone, Debug, Default)]
pub enum AuthSource {
    /// Never send credentials (anonymous tokens only).
    Anonymous,
    /// Docker's config.json (`$DOCKER_CONFIG`, `~/.docker`), helpers included.
    #[default]
    DockerConfig,
    /// These credentials for every registry (login checks, tests, `--creds`).
    Static(Credentials),
}

/// How a `RegistryClient` behaves.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub auth: AuthSource,
    /// Registries (`host:port` as in references) allowed over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// `false` (`--tls-verify=false`): every registry may fall back to
    /// plain HTTP. Certificates are still verified over HTTPS.
    pub tls_verify: bool,
    /// Tries per request, including the first (and per blob, resumes).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled each time, capped at 8 s.
    pub initial_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for one read from the network.
    pub read_timeout: Duration,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            auth: AuthSource::DockerConfig,
            insecure_registries: Vec::new(),
            tls_verify: true,
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A manifest as served: the exact bytes (their digest is the manifest's
/// name), the media type and the verified digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl FetchedManifest {
    pub fn parse(&self) -> Result<ParsedManifest, ManifestError> {
        ParsedManifest::parse(&self.bytes, &self.media_type)
    }

    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::of(&self.media_type, &self.bytes);
        d.digest = self.digest.clone();
        d
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scheme {
    Https,
    Http,
}

struct Inner {
    agent: ureq::Agent,
    /// For the one-shot HTTPS probe of registries allowed plain HTTP.
    probe_agent: ureq::Agent,
    options: ClientOptions,
    tokens: Mutex<HashMap<(String, String), Token>>,
    basic: Mutex<HashMap<String, bool>>,
    schemes: Mutex<HashMap<String, Scheme>>,
    credentials: Mutex<HashMap<String, Option<Credentials>>>,
}

/// The distribution API v2 client. Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

/// What one request is about: for auth scopes and error messages.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    registry: String,
    /// Space-separated token scopes, e.g. `repository:a/b:pull`.
    scope: String,
    context: String,
}

impl Target {
    fn error(&self, kind: impl Into<ErrorKind>) -> RegistryError {
        RegistryError {
            context: self.context.clone(),
            kind: kind.into(),
        }
    }
}

pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
}

fn pull_scope(reference: &Reference) -> String {
    format!("repository:{}:pull", reference.repository)
}

fn push_scope(reference: &Reference) -> String {
    format!("repository:{}:pull,push", reference.repository)
}

impl RegistryClient {
    pub fn new(options: ClientOptions) -> RegistryClient {
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(options.connect_timeout)
            .timeout_read(options.read_timeout)
            .redirects(8)
            .user_agent(&options.user_agent);
        let mut probe_agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .redirects(0)
            .user_agent(&options.user_agent);
        // --tls-verify=false: HTTPS that accepts any certificate (Docker's
        // insecure registry), before the fall-back to plain HTTP.
        if !options.tls_verify {
            if let Some(tls) = insecure::unverified_tls_config() {
                agent = agent.tls_config(tls.clone());
                probe_agent = probe_agent.tls_config(tls);
            }
        }
        let agent = agent.build();
        let probe_agent = probe_agent.build();
        RegistryClient {
            inner: Arc::new(Inner {
                agent,
                probe_agent,
                options,
                tokens: Mutex::default(),
                basic: Mutex::default(),
                schemes: Mutex::default(),
                credentials: Mutex::default(),
            }),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Fetch the manifest or index `reference` names (its digest if it has
    /// one, else its tag). With a digest the bytes are verified against it.
    pub fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        let target = Target {
            registry: reference.registry.clone(),
            scope: pull_scope(reference),
            context: format!(
                "fetch manifest {} from {}",
                reference.api_reference(),
                reference.repo_ref()
            ),
        };
        let path = format!(
            "/v2/{}/manifests/{}",
            reference.repository,
            reference.api_reference()
        );
        let accept = MANIFEST_ACCEPT.join(", ");
        let resp = self.execute(&target, "GET", &path, &[("Accept", &accept)], Body::Empty)?;
        let media_type = resp.header("content-type").unwrap_or("").to_string();
        let header_digest = resp.header("docker-content-digest").map(str::to_string);
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| target.error(e))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(target.error(ErrorKind::Protocol(format!(
                "manifest larger than {MAX_MANIFEST_BYTES} bytes"
            ))));
        }
        let digest = verify_manifest_digest(&target, reference, &bytes, header_digest)?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Stream the blob `descriptor` names. The reader retries, resumes with
    /// `Range` after a dropped connection and fails when the registry sends
    /// more or fewer than `descriptor.size` bytes. It does not check the
    /// digest: wrap it in a `DigestReader` (the pull does, once).
    pub fn open_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, RegistryError> {
        let target = Target {
            registry: reference.registry.clone(),
            scope: pull_scope(reference),
            context: format!(
                "fetch blob {} from {}",
                descriptor.digest,
                reference.repo_ref()
            ),
        };
        let path = format!("/v2/{}/blobs/{}", reference.repository, descriptor.digest);
        BlobReader::open(self.clone(), target, path, descriptor.size)
    }

    /// Read a whole (small) blob, such as an image config, and verify its
    /// size and digest.
    pub fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let reader = self.open_blob(reference, descriptor)?;
        let mut r = DigestReader::with_algorithm(reader, descriptor.digest.algorithm());
        let mut bytes = Vec::with_capacity(descriptor.size.min(16 << 20) as usize);
        r.read_to_end(&mut bytes).map_err(|e| {
            into_registry_error(e, || {
                format!(
                    "fetch blob {} from {}",
                    descriptor.digest,
                    reference.repo_ref()
                )
            })
        })?;
        let actual = r.digest();
        if actual != descriptor.digest {
            return Err(RegistryError {
                context: format!(
                    "fetch blob {} from {}",
                    descriptor.digest,
                    reference.repo_ref()
                ),
                kind: ErrorKind::DigestMismatch {
                    expected: descriptor.digest.clone(),
                    actual,
                },
            });
        }
        Ok(bytes)
    }

    /// Whether the repository has the blob (`HEAD`).
    pub fn blob_exists(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        self.blob_exists_scoped(reference, digest, pull_scope(reference))
    }

    fn blob_exists_scoped(
        &self,
        reference: &Reference,
        digest: &Digest,
        scope: String,
    ) -> Result<bool, RegistryError> {
        let target = Target {
            registry: reference.registry.clone(),
            scope,
            context: format!("check blob {digest} in {}", reference.repo_ref()),
        };
        let path = format!("/v2/{}/blobs/{digest}", reference.repository);
        match self.execute(&target, "HEAD", &path, &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Upload a blob unless the repository has it already: `POST` an upload,
    /// then one monolithic `PUT ?digest=`. Returns false when it was skipped.
    /// `data` must yield exactly `descriptor.size` bytes with its digest.
    pub fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        data: impl Read,
    ) -> Result<bool, RegistryError> {
        let digest = &descriptor.digest;
        if self.blob_exists_scoped(reference, digest, push_scope(reference))? {
            return Ok(false);
        }
        let target = Target {
            registry: reference.registry.clone(),
            scope: push_scope(reference),
            context: format!("push blob {digest} to {}", reference.repo_ref()),
        };
        let start = format!("/v2/{}/blobs/uploads/", reference.repository);
        let resp = self.execute(
            &target,
            "POST",
            &start,
            &[("Content-Length", "0")],
            Body::Empty,
        )?;
        let location = upload_location(&target, &resp)?;
        let url = format!(
            "{}{}digest={}",
            self.absolute_url(&target, &location)?,
            if location.contains('?') { '&' } else { '?' },
            query_escape(&digest.to_string())
        );
        let size = descriptor.size.to_string();
        let mut counted =
            DigestReader::with_algorithm(data.take(descriptor.size + 1), digest.algorithm());
        let result = self.send_stream(&target, "PUT", &url, &size, &mut counted);
        if counted.bytes_read() != descriptor.size {
            return Err(target.error(ErrorKind::Size {
                expected: descriptor.size,
                actual: counted.bytes_read(),
            }));
        }
        result?;
        Ok(true)
    }

    /// Ask the registry to link a blob from another repository of the same
    /// registry (`POST ?mount=&from=`): true when mounted (201), false when
    /// the registry wants an upload instead (202).
    pub fn mount_blob(
        &self,
        reference: &Reference,
        from_repo: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let target = Target {
            registry: reference.registry.clone(),
            scope: format!("{} repository:{from_repo}:pull", push_scope(reference)),
            context: format!(
                "mount blob {digest} from {from_repo} into {}",
                reference.repo_ref()
            ),
        };
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            reference.repository,
            query_escape(&digest.to_string()),
            query_escape(from_repo)
        );
        let resp = self.execute(
            &target,
            "POST",
            &path,
            &[("Content-Length", "0")],
            Body::Empty,
        )?;
        match resp.status() {
            201 => Ok(true),
            202 => {
                // An upload session was opened instead; close it.
                if let Ok(loc) = upload_location(&target, &resp) {
                    if let Ok(url) = self.absolute_url(&target, &loc) {
                        let _ = self.execute(&target, "DELETE", &url, &[], Body::Empty);
                    }
                }
                Ok(false)
            }
            s => Err(target.error(ErrorKind::Protocol(format!(
                "unexpected HTTP {s} to a mount request"
            )))),
        }
    }

    /// Upload a manifest under the reference's tag (or digest). Returns its
    /// digest, checked against what the registry reports.
    pub fn put_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let target = Target {
            registry: reference.registry.clone(),
            scope: push_scope(reference),
            context: format!(
                "push manifest {} to {}",
                reference.api_reference(),
                reference.repo_ref()
            ),
        };
        let path = format!(
            "/v2/{}/manifests/{}",
            reference.repository,
            reference.api_reference()
        );
        let resp = self.execute(
            &target,
            "PUT",
            &path,
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
        )?;
        if let Some(h) = resp.header("docker-content-digest") {
            if let Ok(reported) = Digest::parse(h.trim()) {
                if reported.algorithm() == digest.algorithm() && reported != digest {
                    return Err(target.error(ErrorKind::DigestMismatch {
                        expected: digest,
                        actual: reported,
                    }));
                }
            }
        }
        Ok(digest)
    }

    /// Check that `creds` log in to `registry` (`berth login`): the
    /// registry's `/v2/` with basic auth, or a token request with them.
    pub fn check_login(&self, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let target = Target {
            registry: registry.to_string(),
            scope: String::new(),
            context: format!("log in to {registry} as {}", creds.username),
        };
        let url = format!("{}/v2/", self.base_url(&target)?);
        let first = self.inner.agent.get(&url).call();
        let resp = match first {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Status(401, resp)) => resp,
            Err(e) => return Err(target.error(ureq_error_kind(e))),
        };
        let challenges: Vec<Challenge> = resp
            .all("www-authenticate")
            .iter()
            .flat_map(|h| parse_challenges(h))
            .collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            self.fetch_token(&target, bearer, Some(creds), Some(&creds.username))
                .map(|_| ())
        } else {
            let r = self
                .inner
                .agent
                .get(&url)
                .set("Authorization", &basic_header(creds))
                .call();
            r.map(|_| ()).map_err(|e| target.error(ureq_error_kind(e)))
        }
    }

    /// Send one request with auth, retries and backoff. `path` is a path
    /// under the registry's base URL or an absolute URL.
    pub(crate) fn execute(
        &self,
        target: &Target,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::Response, RegistryError> {
        let url = self.absolute_url(target, path)?;
        let opts = &self.inner.options;
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            attempt += 1;
            let mut req = self.inner.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(auth) = self.auth_header(target)? {
                req = req.set("Authorization", &auth);
            }
            let result = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
            };
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            let retry_after = match &err {
                ureq::Error::Status(401, resp) if !authenticated => {
                    authenticated = true;
                    attempt -= 1;
                    self.authenticate(target, resp)?;
                    continue;
                }
                ureq::Error::Status(code, resp) if *code == 429 || *code >= 500 => resp
                    .header("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok()),
                ureq::Error::Transport(t) if transport_retryable(t) => None,
                _ => return Err(target.error(ureq_error_kind(err))),
            };
            if attempt >= opts.max_attempts {
                return Err(target.error(ureq_error_kind(err)));
            }
            std::thread::sleep(self.backoff(attempt, retry_after));
        }
    }

    /// A streamed upload: sent once (a stream cannot be replayed), with
    /// whatever auth the `POST` before it established.
    fn send_stream(
        &self,
        target: &Target,
        method: &str,
        url: &str,
        content_length: &str,
        data: &mut dyn Read,
    ) -> Result<ureq::Response, RegistryError> {
        let mut req = self
            .inner
            .agent
            .request(method, url)
            .set("Content-Type", "application/octet-stream")
            .set("Content-Length", content_length);
        if let Some(auth) = self.auth_header(target)? {
            req = req.set("Authorization", &auth);
        }
        req.send(data).map_err(|e| target.error(ureq_error_kind(e)))
    }

    pub(crate) fn backoff(&self, attempt: u32, retry_after_secs: Option<u64>) -> Duration {
        let base = self.inner.options.initial_backoff;
        let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        let wait = match retry_after_secs {
            Some(s) => Duration::from_secs(s).max(exp),
            None => exp,
        };
        wait.min(Duration::from_secs(8))
    }

    /// Resolve `path` (or an absolute URL) against the registry's base URL.
    fn absolute_url(&self, target: &Target, path: &str) -> Result<String, RegistryError> {
        if path.starts_with("https://") || path.starts_with("http://") {
            return Ok(path.to_string());
        }
        Ok(format!("{}{path}", self.base_url(target)?))
    }

    /// `https://host` or, for registries allowed plain HTTP and not
    /// answering TLS, `http://host`. Decided once per registry.
    fn base_url(&self, target: &Target) -> Result<String, RegistryError> {
        let host = api_host(&target.registry);
        if !self.plain_http_allowed(&target.registry) {
            return Ok(format!("https://{host}"));
        }
        let cached = lock(&self.inner.schemes).get(&target.registry).copied();
        let scheme = match cached {
            Some(s) => s,
            None => {
                let probe = self
                    .inner
                    .probe_agent
                    .get(&format!("https://{host}/v2/"))
                    .call();
                let s = match probe {
                    Ok(_) | Err(ureq::Error::Status(..)) => Scheme::Https,
                    Err(ureq::Error::Transport(_)) => Scheme::Http,
                };
                lock(&self.inner.schemes).insert(target.registry.clone(), s);
                s
            }
        };
        Ok(match scheme {
            Scheme::Https => format!("https://{host}"),
            Scheme::Http => format!("http://{host}"),
        })
    }

    fn plain_http_allowed(&self, registry: &str) -> bool {
        let opts = &self.inner.options;
        !opts.tls_verify
            || opts.insecure_registries.iter().any(|r| r == registry)
            || is_loopback(registry)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `registry` (host[:port]) is 127.0.0.0/8, ::1 or localhost.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn transport_retryable(t: &ureq::Transport) -> bool {
    // DNS failures are left out: almost always a misspelt host, and
    // retrying one only makes the user wait for the same answer.
    use ureq::ErrorKind as K;
    matches!(t.kind(), K::ConnectionFailed | K::Io)
}

fn upload_location(target: &Target, resp: &ureq::Response) -> Result<String, RegistryError> {
    resp.header("location")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            target.error(ErrorKind::Protocol(
                "upload response has no Location header".into(),
            ))
        })
}

fn verify_manifest_digest(
    target: &Target,
    reference: &Reference,
    bytes: &[u8],
    header: Option<String>,
) -> Result<Digest, RegistryError> {
    let expected = match (&reference.digest, header) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(h)) => Digest::parse(h.trim()).ok(),
        (None, None) => None,
    };
    match expected {
        Some(exp) => {
            let actual = Digest::of_with(exp.algorithm(), bytes);
            if actual != exp {
                return Err(target.error(ErrorKind::DigestMismatch {
                    expected: exp,
                    actual,
                }));
            }
            Ok(exp)
        }
        None => Ok(Digest::of(bytes)),
    }
}

/// Percent-encode a query value (RFC 3986 unreserved kept).
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "LOCALHOST:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(r), "{r} is loopback");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(r), "{r} is not loopback");
        }
    }

    #[test]
    fn plain_http_only_where_allowed() {
        let c = RegistryClient::new(ClientOptions {
            insecure_registries: vec!["reg.lan:5000".into()],
            ..ClientOptions::default()
        });
        assert!(c.plain_http_allowed("127.0.0.1:5000"));
        assert!(c.plain_http_allowed("reg.lan:5000"));
        assert!(!c.plain_http_allowed("reg.lan"));
        assert!(!c.plain_http_allowed("ghcr.io"));
        let c = RegistryClient::new(ClientOptions {
            tls_verify: false,
            ..ClientOptions::default()
        });
        assert!(c.plain_http_allowed("ghcr.io"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = RegistryClient::new(ClientOptions {
            initial_backoff: Duration::from_millis(100),
            ..ClientOptions::default()
        });
        assert_eq!(c.backoff(1, None), Duration::from_millis(100));
        assert_eq!(c.backoff(2, None), Duration::from_millis(200));
        assert_eq!(c.backoff(3, None), Duration::from_millis(400));
        assert_eq!(c.backoff(2, Some(3)), Duration::from_secs(3));
        assert_eq!(c.backoff(30, None), Duration::from_secs(8));
        assert_eq!(c.backoff(1, Some(3600)), Duration::from_secs(8));
    }

    #[test]
    fn query_escaping() {
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(query_escape("sha256:ab"), "sha256%3Aab");
    }

    #[test]
    fn manifest_digest_is_verified() {
        let r = Reference::parse("localhost:5000/a").unwrap();
        let t = Target {
            registry: r.registry.clone(),
            scope: String::new(),
            context: "fetch manifest latest from localhost:5000/a".into(),
        };
        let body = b"{}";
        assert_eq!(
            verify_manifest_digest(&t, &r, body, None).unwrap(),
            Digest::of(body)
        );
        let wrong = Digest::of(b"other").to_string();
        let e = verify_manifest_digest(&t, &r, body, Some(wrong))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fetch manifest latest from localhost:5000/a: content has digest"),
            "{e}"
        );
        let pinned = r.with_digest(Digest::of(b"x"));
        assert!(verify_manifest_digest(&t, &pinned, body, None).is_err());
    }
}
