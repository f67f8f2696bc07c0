//! Registry errors: what failed (operation, registry, repository, digest
//! or tag) and how (HTTP status with the registry's own error codes,
//! transport, size or digest mismatch).

use std::io::Read;

use crate::auth::AuthError;
use crate::digest::Digest;
use crate::manifest::ManifestError;

/// What a registry request failed with.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The registry answered with an error status; `detail` carries its
    /// error codes and messages.
    #[error("HTTP {status} {reason}{detail}")]
    Http {
        status: u16,
        reason: String,
        detail: String,
    },
    #[error("{0}")]
    Transport(String),
    #[error("expected {expected} bytes, the registry sent {actual}")]
    Size { expected: u64, actual: u64 },
    #[error("content has digest {actual}, expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Protocol(String),
    #[error("credentials: {0}")]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A registry operation that failed: `context` says which
/// ("fetch blob sha256:... from 127.0.0.1:5000/test").
#[derive(Debug, thiserror::Error)]
#[error("{context}: {kind}")]
pub struct RegistryError {
    pub context: String,
    pub kind: ErrorKind,
}

impl RegistryError {
    /// The HTTP status, when the registry answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Http { status, .. } => Some(status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }
}

pub(super) fn ureq_error_kind(e: ureq::Error) -> ErrorKind {
    match e {
        ureq::Error::Status(status, resp) => {
            let reason = resp.status_text().to_string();
            let detail = registry_error_detail(resp);
            let hint = if status == 401 {
                "; check the user name and password (berth login)"
            } else {
                ""
            };
            ErrorKind::Http {
                status,
                reason,
                detail: format!("{detail}{hint}"),
            }
        }
        ureq::Error::Transport(t) => ErrorKind::Transport(t.to_string()),
    }
}

/// The registry's `{"errors":[{"code","message"}]}` as `: CODE: message`.
fn registry_error_detail(resp: ureq::Response) -> String {
    let mut text = String::new();
    if resp
        .into_reader()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .is_err()
    {
        return String::new();
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for e in v
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
    {
        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
        parts.push(
            format!("{code}: {msg}")
                .trim_matches([' ', ':'])
                .to_string(),
        );
    }
    if let Some(d) = v.get("details").and_then(|d| d.as_str()) {
        parts.push(d.to_string());
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// Turn an I/O error from a `BlobReader` back into the registry error it
/// carries, or wrap it with `context`.
pub fn into_registry_error(e: std::io::Error, context: impl FnOnce() -> String) -> RegistryError {
    if e.get_ref().is_some_and(|inner| inner.is::<RegistryError>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(re) = inner.downcast::<RegistryError>() {
                return *re;
            }
        }
        return RegistryError {
            context: context(),
            kind: ErrorKind::Protocol("lost error".into()),
        };
    }
    RegistryError {
        context: context(),
        kind: ErrorKind::Io(e),
    }
}
