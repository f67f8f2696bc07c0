//! Pulling images the tests built and pushed to a real registry.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::*;

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

/// The snapshot dirs of an image, top first, from `inspect` + the store layout.
fn snapshot_dirs(root: &Root, image: &str) -> Vec<std::path::PathBuf> {
    let v: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", image])).expect("inspect json");
    let diff_ids: Vec<image::digest::Digest> = v[0]["RootFS"]["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|d| image::digest::Digest::parse(d.as_str().expect("str")).expect("digest"))
        .collect();
    image::manifest::chain_ids(&diff_ids)
        .iter()
        .rev()
        .map(|c| root.path().join("snapshots").join(c.hex()).join("fs"))
        .collect()
}

#[test]
fn pull_multi_layer_oci_gzip_unpacks_every_kind_of_entry() {
    let Some(reg) = registry() else { return };
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let name = format!("{}/test/rich:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    let out = root.ok(&["pull", &name]);
    assert_eq!(out.trim(), name, "pull prints the full name on stdout");
    let images = root.images();
    assert_eq!(images.len(), 1, "one image after the pull: {images:?}");
    assert_eq!(
        images[0]["ID"],
        serde_json::json!(&img.config_digest.hex()[..12])
    );
    let dirs = snapshot_dirs(&root, &name);
    assert_eq!(dirs.len(), 3);
    let (top, middle, base) = (&dirs[0], &dirs[1], &dirs[2]);
    let su = std::fs::metadata(base.join("bin/su")).expect("bin/su");
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755, "setuid bit kept");
    let odd = std::fs::metadata(base.join("home-of-odd")).expect("odd owner file");
    assert_eq!((odd.uid(), odd.gid()), (1234, 5678), "odd owner kept");
    assert_eq!(
        std::fs::read_link(base.join("bin/sh")).expect("symlink"),
        Path::new("su")
    );
    let (a, b) = (
        std::fs::metadata(middle.join("data/original")).expect("a"),
        std::fs::metadata(middle.join("data/link")).expect("b"),
    );
    assert_eq!(a.ino(), b.ino(), "hard link shares the inode");
    assert_eq!(
        std::fs::metadata(middle.join("data"))
            .expect("data")
            .permissions()
            .mode()
            & 0o7777,
        0o1777,
        "sticky dir"
    );
    let gone = std::fs::symlink_metadata(top.join("etc/gone")).expect("whiteout");
    assert_eq!(
        (gone.mode() & libc::S_IFMT, gone.rdev()),
        (libc::S_IFCHR, 0),
        "whiteout is a 0/0 char device"
    );
    assert_eq!(
        xattr(&top.join("etc/app"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..]),
        "opaque dir marked"
    );
    assert!(
        !top.join("etc/app/.wh..wh..opq").exists(),
        "opaque marker not left as a file"
    );
}

#[test]
fn pull_docker_manifest_and_zstd_layers() {
    let Some(reg) = registry() else { return };
    let docker = build_image(&rich_layers(Codec::Gzip), true, "amd64");
    let zstd = build_image(&rich_layers(Codec::Zstd), false, "amd64");
    push_image(&format!("{}/test/docker:1", reg.addr), &docker);
    push_image(&format!("{}/test/zstd:1", reg.addr), &zstd);
    let root = Root::new();
    root.ok(&["pull", "-q", &format!("{}/test/docker:1", reg.addr)]);
    let out = root.run(&["pull", &format!("{}/test/zstd:1", reg.addr)]);
    assert!(
        out.status.success(),
        "zstd pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same diff_ids: the zstd image reuses the gzip image's snapshots.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        root.entries("snapshots").len(),
        3,
        "layers shared by chain id"
    );
    assert_eq!(
        root.ok(&["images", "-q"]).lines().count(),
        1,
        "one image id (same config) under two names"
    );
    assert!(
        stderr.contains("Digest: sha256:"),
        "progress ends with the digest: {stderr}"
    );
}

#[test]
fn pull_index_selects_the_platform() {
    let Some(reg) = registry() else { return };
    let amd = build_image(
        &[(LayerTar::new().file("arch", b"amd64").finish(), Codec::Gzip)],
        false,
        "amd64",
    );
    let arm = build_image(
        &[(LayerTar::new().file("arch", b"arm64").finish(), Codec::None)],
        false,
        "arm64",
    );
    let name = format!("{}/test/multi:1", reg.addr);
    let index_digest = push_index(&name, &[(&amd, "amd64"), (&arm, "arm64")]);
    let root = Root::new();
    root.ok(&["pull", "--platform", "linux/arm64", &name]);
    let v: serde_json::Value = serde_json::from_str(&root.ok(&["inspect", &name])).expect("json");
    assert_eq!(v[0]["Architecture"], "arm64");
    assert_eq!(v[0]["Id"], serde_json::json!(arm.config_digest.to_string()));
    let digests = v[0]["RepoDigests"].to_string();
    assert!(
        digests.contains(&index_digest.to_string()),
        "repo digest is the index digest: {digests}"
    );
    let other = Root::new();
    other.ok(&["pull", &name]);
    let v: serde_json::Value = serde_json::from_str(&other.ok(&["inspect", &name])).expect("json");
    assert_eq!(
        v[0]["Architecture"], "amd64",
        "default is the host platform"
    );
    let err = Root::new().fails(&["pull", "--platform", "linux/s390x", &name]);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("no matching manifest") && last.starts_with("berth: "),
        "the last line says why: {err}"
    );
}

#[test]
fn pull_by_digest_then_again_is_up_to_date() {
    let Some(reg) = registry() else { return };
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let digest = push_image(&format!("{}/test/bydigest:1", reg.addr), &img);
    let root = Root::new();
    let by_digest = format!("{}/test/bydigest@{digest}", reg.addr);
    root.ok(&["pull", &by_digest]);
    let out = root.run(&["pull", &by_digest]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Already exists") && stderr.contains("Image is up to date"),
        "{stderr}"
    );
    let images = root.images();
    assert_eq!(
        images[0]["Repository"],
        serde_json::json!(format!("{}/test/bydigest", reg.addr))
    );
    assert_eq!(images[0]["Tag"], "<none>", "pull by digest makes no tag");
    assert_eq!(images[0]["Digest"], serde_json::json!(digest.to_string()));
}
