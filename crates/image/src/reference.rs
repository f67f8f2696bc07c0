//! Image references by Docker's rules (github.com/distribution/reference).
//!
//! `busybox` means `docker.io/library/busybox:latest`: the first path
//! component names a registry only when it contains `.` or `:`, is
//! `localhost`, or has upper-case letters; Docker Hub repositories with one
//! component live under `library/`; a reference with neither tag nor digest
//! gets the tag `latest`. The grammar is parsed by hand (no regex crate):
//!
//! ```text
//! reference  := [domain "/"] path [":" tag] ["@" digest]
//! domain     := host [":" port]      host := dns-name | "[" ipv6 "]"
//! path       := component ("/" component)*
//! component  := [a-z0-9]+ (separator [a-z0-9]+)*   separator := [_.] | "__" | "-"+
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;

/// Why a string is not an image reference. The message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

/// A fully normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`.
    pub registry: String,
    /// `library/busybox`, `user/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise like `docker pull`: adds `docker.io`, `library/`
    /// and the tag `latest` when neither tag nor digest is given.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_named(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parse and normalise without adding a default tag (for `berth push
    /// NAME` meaning all tags, or `rmi` by name).
    pub fn parse_named(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(err("empty reference"));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(err(
                "cannot specify a 64-byte hexadecimal string as repository name",
            ));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                let digest = Digest::parse(d).map_err(|e| err(&e.to_string()))?;
                (n, Some(digest))
            }
            None => (input, None),
        };
        let (domain, remainder) = split_domain(name_tag);
        let (path, tag) = match remainder.rfind(':') {
            Some(i) => (&remainder[..i], Some(&remainder[i + 1..])),
            None => (remainder, None),
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository name must be lowercase"));
        }
        validate_path(path).map_err(|r| err(&r))?;
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| err(&r))?;
        }
        let registry = match domain {
            Some(d) => {
                validate_domain(d).map_err(|r| err(&r))?;
                if d == "index.docker.io" {
                    DOCKER_HUB.to_string()
                } else {
                    d.to_string()
                }
            }
            None => DOCKER_HUB.to_string(),
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(err(
                "repository name must not be longer than 255 characters",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The short form Docker prints: `busybox:latest`, `user/app:1`,
    /// `ghcr.io/org/app@sha256:...`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The repository in Docker's short form, without tag or digest.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            let repo = self.repository.strip_prefix("library/");
            match repo {
                Some(r) if !r.contains('/') => r.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.repo_ref()
        }
    }

    /// The host (and port) to talk to: `docker.io` is served by
    /// `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// `registry/repository`, without tag or digest.
    pub fn repo_ref(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with `tag` (any digest dropped).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag).map_err(|reason| ReferenceError {
            input: format!("{}:{tag}", self.repo_ref()),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What goes after `/manifests/` in the registry API: the digest when
    /// there is one, else the tag.
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

/// The host serving a registry's API (`docker.io` -> `registry-1.docker.io`).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repo_ref();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Docker's `splitDockerDomain`: the first component is a domain when it
/// has `.` or `:`, is `localhost`, or is not all lower case.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("repository name must have at least one component".into());
    }
    for component in path.split('/') {
        validate_component(component)
            .map_err(|why| format!("invalid repository name component {component:?}: {why}"))?;
    }
    Ok(())
}

fn validate_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() {
        return Err("empty component");
    }
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("must start and end with a lowercase letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err("separators are '.', '_', '__' or dashes, between letters or digits");
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    if b.is_empty() {
        return Err("empty tag".into());
    }
    if b.len() > 128 {
        return Err("tag must not be longer than 128 characters".into());
    }
    if !word(b[0]) || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-') {
        return Err(format!(
            "invalid tag {tag:?}: letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid registry host {domain:?}: {why}"));
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return bad("unclosed '['");
        };
        if v6.is_empty() || !v6.bytes().all(|x| x.is_ascii_hexdigit() || x == b':') {
            return bad("not an IPv6 address");
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return bad("junk after ']'"),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(h) = host {
        for label in h.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-');
            if !ok {
                return bad("host names are letters, digits and '-' between dots");
            }
        }
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()) {
            return bad("port must be a number");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn good_references_normalise_like_docker() {
        let table: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("user/app", "docker.io/user/app:latest"),
            ("user/app:v1.0-rc_1", "docker.io/user/app:v1.0-rc_1"),
            ("ghcr.io/org/app", "ghcr.io/org/app:latest"),
            ("ghcr.io/org/team/app:1", "ghcr.io/org/team/app:1"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:t", "localhost:5000/app:t"),
            ("127.0.0.1:5000/test", "127.0.0.1:5000/test:latest"),
            ("[::1]:5000/test", "[::1]:5000/test:latest"),
            (
                "Registry.Example.com/app",
                "Registry.Example.com/app:latest",
            ),
            ("my-registry:5000/a/b", "my-registry:5000/a/b:latest"),
            ("a__b/c-d---e/f.g_h", "docker.io/a__b/c-d---e/f.g_h:latest"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
            ("busybox:_tag", "docker.io/library/busybox:_tag"),
            ("busybox:TAG", "docker.io/library/busybox:TAG"),
        ];
        for (input, want) in table {
            let r = Reference::parse(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse, got: {e}"));
            assert_eq!(r.to_string(), *want, "normalising {input:?}");
        }
    }

    #[test]
    fn digests_with_and_without_tag() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.api_reference(), D);
        let r = Reference::parse(&format!("localhost:5000/app:1@{D}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.api_reference(), D);
        assert_eq!(r.familiar(), format!("localhost:5000/app:1@{D}"));
    }

    #[test]
    fn bad_references_are_refused_clearly() {
        let long_tag = format!("busybox:{}", "a".repeat(129));
        let long_name = format!("{}/x", "a".repeat(255));
        let table: &[(&str, &str)] = &[
            ("", "empty reference"),
            ("Foo", "repository name must be lowercase"),
            ("user/App", "repository name must be lowercase"),
            ("busybox:", "empty tag"),
            ("busybox:-x", "invalid tag"),
            (".busybox", "invalid repository name component"),
            ("busy..box", "invalid repository name component"),
            ("busy._box", "invalid repository name component"),
            ("a___b", "invalid repository name component"),
            ("busybox/", "invalid repository name component"),
            ("a//b", "invalid repository name component"),
            ("busybox@sha256:abc", "lowercase hex digits"),
            (
                "busybox@md5:d41d8cd98f00b204e9800998ecf8427e",
                "unsupported algorithm",
            ),
            ("localhost:port/app", "port must be a number"),
            ("-bad.host/app", "invalid registry host"),
            ("[::1/app", "invalid registry host"),
            ("ghcr.io/app:1:2", "invalid"),
            ("ghcr.io:5000/app/x:y/z", "invalid"),
            (&long_tag, "longer than 128"),
            (&long_name, "longer than 255"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "64-byte hexadecimal",
            ),
        ];
        for (input, want) in table {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} should be refused, parsed as {r}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&format!("invalid reference {input:?}: ")),
                        "message {msg:?} should quote the input"
                    );
                    assert!(
                        msg.contains(want),
                        "refusing {input:?}: {msg:?} lacks {want:?}"
                    );
                }
            }
        }
        assert_eq!(
            Reference::parse("Foo").unwrap_err().to_string(),
            "invalid reference \"Foo\": repository name must be lowercase"
        );
    }

    #[test]
    fn familiar_forms_and_api_host() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repo_ref(), "docker.io/library/busybox");
        let r = Reference::parse("user/app:2").unwrap();
        assert_eq!(r.familiar(), "user/app:2");
        let r = Reference::parse("localhost:5000/library/x").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/library/x:latest");
        assert_eq!(r.api_host(), "localhost:5000");
        let t = r.with_tag("v2").unwrap();
        assert_eq!(t.to_string(), "localhost:5000/library/x:v2");
        assert!(r.with_tag("-no").is_err());
        let d = r.with_digest(Digest::parse(D).unwrap());
        assert_eq!(d.api_reference(), D);
        assert_eq!(Reference::parse_named("busybox").unwrap().tag, None);
    }
}
