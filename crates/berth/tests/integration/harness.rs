//! Running `berth` on a temporary root, and building test images.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::digest::Digest;
use image::manifest::Descriptor;
use image::reference::Reference;
use image::registry::{AuthSource, ClientOptions, RegistryClient};
use serde_json::{json, Value};

pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// A store root in a temporary directory, removed on drop.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root {
            dir: tempfile::Builder::new()
                .prefix("berth-it-")
                .tempdir()
                .expect("temp root"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root").arg(self.path()).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run berth")
    }

    /// Runs berth, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed with {}:\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs berth, asserting exit 125; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(125),
            "berth {args:?} should exit 125; stderr: {stderr}"
        );
        stderr
    }

    /// `images --format json` parsed.
    pub fn images(&self) -> Vec<Value> {
        self.ok(&["images", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("images json line"))
            .collect()
    }

    /// Names of entries of a store directory.
    pub fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path().join(sub))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// A layer tar under construction.
pub struct LayerTar {
    b: tar::Builder<Vec<u8>>,
}

impl LayerTar {
    pub fn new() -> LayerTar {
        LayerTar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).expect("tar dir");
        self
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_owned(path, data, 0o644, 0, 0)
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.b.append_data(&mut h, path, data).expect("tar file");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b
            .append_link(&mut h, path, target)
            .expect("tar symlink");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b
            .append_link(&mut h, path, target)
            .expect("tar hardlink");
        self
    }

    /// An AUFS-style whiteout: `dir/.wh.name`.
    pub fn whiteout(self, dir: &str, name: &str) -> Self {
        let path = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&path, b"")
    }

    /// The opaque marker: `dir/.wh..wh..opq`.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("tar finish")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], codec: Codec) -> Vec<u8> {
    match codec {
        Codec::None => data.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip finish")
        }
        Codec::Zstd => zstd::encode_all(data, 3).expect("zstd"),
    }
}

/// Pseudo-random, incompressible bytes (xorshift), deterministic per seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// An image ready to push: blobs and the manifest.
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<(Descriptor, Vec<u8>)>,
    pub manifest: Vec<u8>,
    pub manifest_type: String,
    pub diff_ids: Vec<Digest>,
}

/// Builds an image of `layers` (uncompressed tars) for linux/`arch`;
/// `docker`: Docker schema2 media types, else OCI.
pub fn build_image(layers: &[(Vec<u8>, Codec)], docker: bool, arch: &str) -> BuiltImage {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, codec) in layers {
        diff_ids.push(Digest::of(tar));
        let blob = compress(tar, *codec);
        let media_type = match (docker, codec) {
            (true, Codec::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (_, Codec::None) => "application/vnd.oci.image.layer.v1.tar",
            (_, Codec::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (_, Codec::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        descs.push((Descriptor::of(media_type, &blob), blob));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-05-06T07:08:09Z",
        "config": { "Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
        "history": layers.iter().enumerate().map(|(i, _)| json!({"created": "2024-05-06T07:08:09Z", "created_by": format!("layer {i}")})).collect::<Vec<_>>(),
    }))
    .expect("config json");
    let (manifest_type, config_type) = if docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": { "mediaType": config_type, "digest": Digest::of(&config).to_string(), "size": config.len() },
        "layers": descs.iter().map(|(d, _)| json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size})).collect::<Vec<_>>(),
    }))
    .expect("manifest json");
    BuiltImage {
        config_digest: Digest::of(&config),
        config,
        layers: descs,
        manifest,
        manifest_type: manifest_type.to_string(),
        diff_ids,
    }
}

pub fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        auth: AuthSource::Anonymous,
        ..ClientOptions::default()
    })
}

/// Pushes an image's blobs and manifest under `reference`; returns the manifest digest.
pub fn push_image(reference: &str, img: &BuiltImage) -> Digest {
    let r = Reference::parse(reference).expect("reference");
    let c = client();
    for (desc, blob) in &img.layers {
        c.push_blob(&r, desc, &blob[..]).expect("push layer");
    }
    let config_desc = Descriptor::of("application/vnd.oci.image.config.v1+json", &img.config);
    c.push_blob(&r, &config_desc, &img.config[..])
        .expect("push config");
    c.put_manifest(&r, &img.manifest, &img.manifest_type)
        .expect("push manifest")
}

/// Pushes two images and an OCI index of them under `reference`.
pub fn push_index(reference: &str, images: &[(&BuiltImage, &str)]) -> Digest {
    let r = Reference::parse(reference).expect("reference");
    let mut entries = Vec::new();
    for (img, arch) in images {
        let by_digest = r.with_digest(Digest::of(&img.manifest));
        push_image(&by_digest.to_string(), img);
        entries.push(json!({
            "mediaType": img.manifest_type,
            "digest": Digest::of(&img.manifest).to_string(),
            "size": img.manifest.len(),
            "platform": { "os": "linux", "architecture": arch },
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .expect("index json");
    client()
        .put_manifest(&r, &index, "application/vnd.oci.image.index.v1+json")
        .expect("push index")
}

/// A started registry. A machine without one fails the test with the fix:
/// a test that cannot run must not pass silently.
pub fn registry() -> Option<crate::registry::TestRegistry> {
    assert!(
        crate::registry::TestRegistry::available(),
        "/usr/bin/docker-registry is not installed: apt-get install -y docker-registry apache2-utils (scripts/test does)"
    );
    Some(crate::registry::TestRegistry::start())
}

pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: apt-get install -y {tool} (scripts/test does)"
    );
    found
}

/// The typical test image: three layers exercising whiteouts, an opaque
/// directory, hard links, setuid and odd owners.
pub fn rich_layers(codec: Codec) -> Vec<(Vec<u8>, Codec)> {
    let base = LayerTar::new()
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .dir("etc/app", 0o755)
        .file("etc/app/old.conf", b"old")
        .file("etc/gone", b"removed above")
        .file_owned("bin/su", b"#!/bin/true\n", 0o4755, 0, 0)
        .file_owned("home-of-odd", b"odd", 0o640, 1234, 5678)
        .symlink("bin/sh", "su")
        .finish();
    let middle = LayerTar::new()
        .dir("data", 0o1777)
        .file("data/original", b"linked content")
        .hardlink("data/link", "data/original")
        .file("data/big", &noise(300_000, 7))
        .finish();
    let top = LayerTar::new()
        .dir("etc", 0o755)
        .whiteout("etc", "gone")
        .dir("etc/app", 0o755)
        .opaque("etc/app")
        .file("etc/app/new.conf", b"new")
        .finish();
    vec![(base, codec), (middle, codec), (top, codec)]
}
