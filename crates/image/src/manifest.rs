//! Manifests, indexes and image configs: the OCI image spec and Docker's
//! schema2 formats, which share one JSON shape and differ in media types.
//!
//! Registry responses are outside input: `ParsedManifest::parse` checks the
//! schema version and media type once and hands typed values inward.
//! Docker's deprecated schema1 is refused with a message that says so.
//! Platform matching follows containerd's `platforms` package, which Docker
//! uses: `aarch64` is `arm64`, arm64's default variant is v8, 32-bit arm's
//! is v7, and a host can run lower variants of its own architecture.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MEDIA_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header value for manifest requests, preferred first.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    MEDIA_OCI_INDEX,
    MEDIA_DOCKER_LIST,
    MEDIA_OCI_MANIFEST,
    MEDIA_DOCKER_MANIFEST,
];

/// Largest manifest we read (containerd's limit): a hostile registry must
/// not make us buffer gigabytes.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("schema1 manifests are not supported (deprecated by Docker): media type {0}; push the image again with a current Docker, buildah or skopeo")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest has schemaVersion {0}, expected 2")]
    SchemaVersion(i64),
    #[error("invalid platform {input:?}: {reason}")]
    Platform { input: String, reason: String },
    #[error(
        "no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )]
    NoMatchingPlatform { wanted: String, available: String },
}

/// A reference to content: what the registry API and the store address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `data` with `media_type`.
    pub fn of(media_type: &str, data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::of(data),
            size: data.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// An image manifest (OCI or Docker schema2): one config and its layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: i64,
    /// Always set after `ParsedManifest::parse` (OCI makes it optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image index or a Docker manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// What a manifest request returned, typed.
// Parsed once per pull; boxing would only add noise at every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedManifest {
    Manifest(Manifest),
    Index(Index),
}

impl ParsedManifest {
    /// Parse `bytes` served with the `Content-Type` `media_type`. When the
    /// header is generic (`application/json`, empty, ...) the body's
    /// `mediaType` field decides, then its shape (`manifests` or `layers`).
    pub fn parse(bytes: &[u8], media_type: &str) -> Result<ParsedManifest, ManifestError> {
        let header = media_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let value: Value = serde_json::from_slice(bytes)?;
        let kind = match header.as_str() {
            MEDIA_OCI_MANIFEST | MEDIA_OCI_INDEX | MEDIA_DOCKER_MANIFEST | MEDIA_DOCKER_LIST => {
                header.clone()
            }
            MEDIA_DOCKER_SCHEMA1 | MEDIA_DOCKER_SCHEMA1_SIGNED => {
                return Err(ManifestError::Schema1(header))
            }
            "" | "application/json" | "text/plain" | "application/octet-stream" => sniff(&value)?,
            other => return Err(ManifestError::MediaType(other.to_string())),
        };
        let version = value
            .get("schemaVersion")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if version == 1 {
            return Err(ManifestError::Schema1(kind));
        }
        if version != 2 {
            return Err(ManifestError::SchemaVersion(version));
        }
        if kind == MEDIA_OCI_INDEX || kind == MEDIA_DOCKER_LIST {
            let mut index: Index = serde_json::from_value(value)?;
            index.media_type = Some(kind);
            Ok(ParsedManifest::Index(index))
        } else {
            let mut manifest: Manifest = serde_json::from_value(value)?;
            manifest.media_type = Some(kind);
            Ok(ParsedManifest::Manifest(manifest))
        }
    }

    /// The media type this was parsed as.
    pub fn media_type(&self) -> &str {
        let mt = match self {
            ParsedManifest::Manifest(m) => &m.media_type,
            ParsedManifest::Index(i) => &i.media_type,
        };
        mt.as_deref().unwrap_or("")
    }
}

/// The media type of a body served without a specific one.
fn sniff(value: &Value) -> Result<String, ManifestError> {
    if let Some(mt) = value.get("mediaType").and_then(Value::as_str) {
        return match mt {
            MEDIA_OCI_MANIFEST | MEDIA_OCI_INDEX | MEDIA_DOCKER_MANIFEST | MEDIA_DOCKER_LIST => {
                Ok(mt.to_string())
            }
            MEDIA_DOCKER_SCHEMA1 | MEDIA_DOCKER_SCHEMA1_SIGNED => {
                Err(ManifestError::Schema1(mt.to_string()))
            }
            other => Err(ManifestError::MediaType(other.to_string())),
        };
    }
    if value.get("schemaVersion").and_then(Value::as_i64) == Some(1) {
        return Err(ManifestError::Schema1("(schemaVersion 1)".to_string()));
    }
    if value.get("manifests").is_some() {
        Ok(MEDIA_OCI_INDEX.to_string())
    } else if value.get("config").is_some() {
        Ok(MEDIA_OCI_MANIFEST.to_string())
    } else {
        Err(ManifestError::MediaType(
            "(none, and neither manifests nor config)".to_string(),
        ))
    }
}

/// The image config JSON (Docker and OCI share it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            os_version: self.os_version.clone(),
        }
    }
}

/// The defaults a container made from the image starts with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Chain ids of a layer stack: `chain[0] = diff[0]`,
/// `chain[n] = sha256(chain[n-1] + " " + diff[n])`. A chain id names a
/// layer together with everything under it: the snapshot's key.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => Digest::of(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// An OS/architecture/variant triple, as in `--platform linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

const KNOWN_OS: [&str; 6] = ["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd"];

impl Platform {
    /// Parse `os[/arch[/variant]]` or a bare `arch` (OS linux), normalised.
    pub fn parse(s: &str) -> Result<Platform, ManifestError> {
        let bad = |reason: &str| ManifestError::Platform {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
            return Err(bad(
                "expected os/arch[/variant] (letters, digits, '_', '-', '.')",
            ));
        }
        let host = Platform::host();
        let p = match parts.as_slice() {
            [one] if KNOWN_OS.contains(&one.to_ascii_lowercase().as_str()) => Platform {
                os: one.to_string(),
                ..host
            },
            [arch] => Platform::new("linux", arch, None),
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(bad("expected os/arch[/variant]")),
        };
        Ok(p.normalized())
    }

    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// The platform this program runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new("linux", arch, None).normalized()
    }

    /// containerd's normalisation: lower case, architecture aliases, and the
    /// default variants made explicit (`arm64` -> v8, `arm` -> v7).
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let v = variant.as_deref().unwrap_or("");
        let (arch, variant): (&str, Option<String>) = match arch.as_str() {
            "i386" => ("386", None),
            "x86_64" | "x86-64" | "amd64" => match v {
                "" | "v1" => ("amd64", None),
                other => ("amd64", Some(other.to_string())),
            },
            "aarch64" | "arm64" => match v {
                "" | "8" | "v8" | "v8.0" => ("arm64", Some("v8".into())),
                "9" | "9.0" | "v9.0" => ("arm64", Some("v9".into())),
                other => ("arm64", Some(other.to_string())),
            },
            "armhf" => ("arm", Some("v7".into())),
            "armel" => ("arm", Some("v6".into())),
            "arm" => match v {
                "" | "7" => ("arm", Some("v7".into())),
                "5" | "6" | "8" => ("arm", Some(format!("v{v}"))),
                other => ("arm", Some(other.to_string())),
            },
            other => (other, variant.filter(|v| !v.is_empty())),
        };
        Platform {
            os,
            architecture: arch.to_string(),
            variant,
            os_version: self.os_version.clone(),
        }
    }

    /// Whether an image for `candidate` runs here, and how well: `Some(0)`
    /// is an exact match, higher numbers are older compatible variants
    /// (arm/v6 on an arm/v7 host, 32-bit arm on arm64), `None` does not run.
    pub fn match_rank(&self, candidate: &Platform) -> Option<u32> {
        let want = self.normalized();
        let have = candidate.normalized();
        if want.os != have.os {
            return None;
        }
        let level = |v: &Option<String>| -> Option<u32> {
            v.as_deref()?
                .strip_prefix('v')?
                .split('.')
                .next()?
                .parse()
                .ok()
        };
        if want.architecture == have.architecture {
            if want.variant == have.variant {
                return Some(0);
            }
            // arm and amd64 variants are ordered: a v7 host runs v6 and v5.
            let (w, h) = match want.architecture.as_str() {
                "arm" | "amd64" => (
                    level(&want.variant).unwrap_or(1),
                    level(&have.variant).unwrap_or(1),
                ),
                _ => return None,
            };
            return (h < w).then(|| w - h);
        }
        if want.architecture == "arm64" && have.architecture == "arm" {
            let h = level(&have.variant)?;
            return (h <= 8).then(|| 10 + (8 - h));
        }
        None
    }

    /// `matches` means "runs here" (exact or compatible).
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.match_rank(candidate).is_some()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The index entry to pull for `wanted`: the best match by Docker's rules,
/// the first one listed among equals. Attestation entries (`unknown/unknown`)
/// are never chosen.
pub fn select_platform(index: &Index, wanted: &Platform) -> Result<Descriptor, ManifestError> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in &index.manifests {
        let Some(p) = &d.platform else { continue };
        if let Some(rank) = wanted.match_rank(p) {
            if !matches!(best, Some((r, _)) if r <= rank) {
                best = Some((rank, d));
            }
        }
    }
    if let Some((_, d)) = best {
        return Ok(d.clone());
    }
    let available: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.to_string())
        .collect();
    Err(ManifestError::NoMatchingPlatform {
        wanted: wanted.normalized().to_string(),
        available: if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn entry(platform: &str) -> Descriptor {
        let mut desc = Descriptor::of(MEDIA_OCI_MANIFEST, platform.as_bytes());
        let parts: Vec<&str> = platform.split('/').collect();
        desc.platform = Some(Platform::new(parts[0], parts[1], parts.get(2).copied()));
        desc
    }

    fn index(platforms: &[&str]) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.to_string()),
            manifests: platforms.iter().map(|p| entry(p)).collect(),
            annotations: None,
        }
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let diffs = [d(1), d(2), d(3)];
        let chain = chain_ids(&diffs);
        assert_eq!(chain[0], diffs[0]);
        let c1 = Digest::of(format!("{} {}", diffs[0], diffs[1]).as_bytes());
        assert_eq!(chain[1], c1);
        assert_eq!(
            chain[2],
            Digest::of(format!("{c1} {}", diffs[2]).as_bytes())
        );
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn parse_by_header_and_by_sniffing() {
        let cfg = Descriptor::of(MEDIA_OCI_CONFIG, b"{}");
        let body = serde_json::json!({"schemaVersion": 2, "config": cfg, "layers": []});
        let bytes = serde_json::to_vec(&body).unwrap();
        let m = ParsedManifest::parse(&bytes, MEDIA_DOCKER_MANIFEST).unwrap();
        assert_eq!(m.media_type(), MEDIA_DOCKER_MANIFEST);
        let m = ParsedManifest::parse(&bytes, "application/json; charset=utf-8").unwrap();
        assert_eq!(m.media_type(), MEDIA_OCI_MANIFEST);
        let list = serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_DOCKER_LIST, "manifests": []});
        let m = ParsedManifest::parse(&serde_json::to_vec(&list).unwrap(), "").unwrap();
        assert!(matches!(m, ParsedManifest::Index(_)));
        assert_eq!(m.media_type(), MEDIA_DOCKER_LIST);
    }

    #[test]
    fn schema1_and_garbage_are_refused_clearly() {
        let s1 = br#"{"schemaVersion": 1, "name": "x", "fsLayers": []}"#;
        for mt in [
            MEDIA_DOCKER_SCHEMA1_SIGNED,
            "application/json",
            MEDIA_DOCKER_MANIFEST,
        ] {
            let e = ParsedManifest::parse(s1, mt).unwrap_err().to_string();
            assert!(
                e.starts_with("schema1 manifests are not supported (deprecated by Docker)"),
                "{mt}: {e}"
            );
        }
        let e = ParsedManifest::parse(b"<html>", MEDIA_OCI_MANIFEST).unwrap_err();
        assert!(
            e.to_string().starts_with("manifest is not valid JSON"),
            "{e}"
        );
        let e = ParsedManifest::parse(b"{}", "application/x-weird").unwrap_err();
        assert!(e.to_string().contains("x-weird"), "{e}");
    }

    #[test]
    fn platform_parse_and_normalise() {
        let cases = [
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm64/8", "linux/arm64/v8"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("Linux/AMD64", "linux/amd64"),
            ("arm64", "linux/arm64/v8"),
            ("linux/i386", "linux/386"),
        ];
        for (input, want) in cases {
            assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
        }
        for bad in ["", "linux//arm", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Platform::parse("linux").unwrap(), Platform::host());
    }

    #[test]
    fn select_platform_uses_dockers_variant_rules() {
        let idx = index(&[
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v6",
            "linux/arm/v7",
            "unknown/unknown",
        ]);
        let pick = |want: &str| {
            let got = select_platform(&idx, &Platform::parse(want).unwrap()).unwrap();
            got.platform.unwrap().normalized().to_string()
        };
        assert_eq!(pick("linux/arm64/v8"), "linux/arm64/v8");
        assert_eq!(pick("linux/aarch64"), "linux/arm64/v8");
        assert_eq!(pick("linux/x86_64"), "linux/amd64");
        assert_eq!(pick("linux/arm"), "linux/arm/v7");
        assert_eq!(pick("linux/arm/v6"), "linux/arm/v6");
        let only_v6 = index(&["linux/arm/v6", "linux/amd64"]);
        let got = select_platform(&only_v6, &Platform::parse("linux/arm/v7").unwrap()).unwrap();
        assert_eq!(got.platform.unwrap().to_string(), "linux/arm/v6");
        let arm32 = index(&["linux/arm/v7"]);
        assert!(select_platform(&arm32, &Platform::parse("linux/arm64").unwrap()).is_ok());
        let e = select_platform(&only_v6, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries (available: linux/arm/v6, linux/amd64)"
        );
        let v7_only = index(&["linux/arm/v7"]);
        assert!(select_platform(&v7_only, &Platform::parse("linux/arm/v6").unwrap()).is_err());
    }

    #[test]
    fn image_config_reads_docker_json() {
        let json = br#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
          "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"Entrypoint":null,"WorkingDir":"",
                    "ExposedPorts":{"80/tcp":{}},"Labels":{"a":"b"},"StopSignal":"SIGQUIT"},
          "container_config":{"Cmd":["x"]},
          "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
          "history":[{"created_by":"ADD x /","empty_layer":true},{"created_by":"RUN y"}]}"#;
        let c = ImageConfig::parse(json).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(cc.entrypoint, None);
        assert!(cc.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert!(c.history[0].empty_layer && !c.history[1].empty_layer);
        assert_eq!(c.platform().to_string(), "linux/amd64");
        let back = serde_json::to_vec(&c).unwrap();
        assert_eq!(ImageConfig::parse(&back).unwrap(), c);
    }
}
