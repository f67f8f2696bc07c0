//! Registries that lie: a wrong digest, a truncated blob, a manifest that is
//! not JSON. The pull fails naming what was wrong; the store is unchanged.

use crate::fake_registry::{routes_for, FakeRegistry};
use crate::harness::*;

fn assert_store_empty(root: &Root) {
    assert!(root.images().is_empty(), "no image recorded");
    assert!(
        root.entries("snapshots").is_empty(),
        "no snapshot: {:?}",
        root.entries("snapshots")
    );
    assert!(
        root.entries("blobs/sha256").is_empty(),
        "no blob: {:?}",
        root.entries("blobs/sha256")
    );
    // Our own temp area is gone with the process; nothing else may remain.
    assert!(
        root.entries("tmp").is_empty(),
        "no temp leftovers: {:?}",
        root.entries("tmp")
    );
}

fn one_layer() -> BuiltImage {
    build_image(
        &[(
            LayerTar::new().file("f", &noise(100_000, 3)).finish(),
            Codec::Gzip,
        )],
        false,
        "amd64",
    )
}

#[test]
fn a_blob_with_the_wrong_digest_fails_the_pull_naming_the_digest() {
    let img = one_layer();
    let mut routes = routes_for("test/lie", "1", &img);
    let layer = &img.layers[0].0;
    let path = format!("/v2/test/lie/blobs/{}", layer.digest);
    let mut body = routes[&path].1.clone();
    let last = body.len() - 1;
    body[last] ^= 0xff; // same size, other content
    routes.insert(path, ("application/octet-stream".into(), body));
    let fake = FakeRegistry::start(routes);
    let root = Root::new();
    let err = root.fails(&["pull", &format!("{}/test/lie:1", fake.addr)]);
    assert!(
        err.contains(&layer.digest.to_string()) && err.contains("digest mismatch"),
        "{err}"
    );
    assert_store_empty(&root);
}

#[test]
fn a_wrong_digest_in_a_valid_gzip_stream_is_caught_too() {
    // The registry serves a different, well-formed layer under the digest.
    let img = one_layer();
    let other = one_layer_with(b"other");
    let mut routes = routes_for("test/swap", "1", &img);
    let path = format!("/v2/test/swap/blobs/{}", img.layers[0].0.digest);
    routes.insert(path, ("application/octet-stream".into(), other));
    let fake = FakeRegistry::start(routes);
    let root = Root::new();
    let err = root.fails(&["pull", &format!("{}/test/swap:1", fake.addr)]);
    assert!(err.contains(&img.layers[0].0.digest.to_string()), "{err}");
    assert_store_empty(&root);
}

fn one_layer_with(content: &[u8]) -> Vec<u8> {
    compress(&LayerTar::new().file("f", content).finish(), Codec::Gzip)
}

#[test]
fn a_truncated_blob_fails_the_pull() {
    let img = one_layer();
    let mut routes = routes_for("test/short", "1", &img);
    let path = format!("/v2/test/short/blobs/{}", img.layers[0].0.digest);
    let body = routes[&path].1[..1000].to_vec();
    routes.insert(path, ("application/octet-stream".into(), body));
    let fake = FakeRegistry::start(routes);
    let root = Root::new();
    let err = root.fails(&["pull", &format!("{}/test/short:1", fake.addr)]);
    assert!(
        err.contains(&img.layers[0].0.digest.to_string()),
        "names the blob: {err}"
    );
    assert_store_empty(&root);
}

#[test]
fn a_manifest_that_is_not_json_fails_the_pull() {
    let img = one_layer();
    let mut routes = routes_for("test/notjson", "1", &img);
    routes.insert(
        "/v2/test/notjson/manifests/1".into(),
        (
            "application/vnd.oci.image.manifest.v1+json".into(),
            b"<html>oops</html>".to_vec(),
        ),
    );
    let fake = FakeRegistry::start(routes);
    let root = Root::new();
    let err = root.fails(&["pull", &format!("{}/test/notjson:1", fake.addr)]);
    assert!(err.contains("not valid JSON"), "{err}");
    assert_store_empty(&root);
}

#[test]
fn a_config_whose_diff_id_lies_fails_the_pull() {
    // The layer blob matches the manifest, but not the config's diff_id.
    let img = one_layer();
    let mut config: serde_json::Value = serde_json::from_slice(&img.config).expect("config");
    let fake_diff = image::digest::Digest::of(b"not the tar");
    config["rootfs"]["diff_ids"] = serde_json::json!([fake_diff.to_string()]);
    let config = serde_json::to_vec(&config).expect("json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).expect("manifest");
    manifest["config"]["digest"] =
        serde_json::json!(image::digest::Digest::of(&config).to_string());
    manifest["config"]["size"] = serde_json::json!(config.len());
    let mut routes = routes_for("test/difflie", "1", &img);
    routes.insert(
        "/v2/test/difflie/manifests/1".into(),
        (
            img.manifest_type.clone(),
            serde_json::to_vec(&manifest).expect("json"),
        ),
    );
    routes.insert(
        format!(
            "/v2/test/difflie/blobs/{}",
            image::digest::Digest::of(&config)
        ),
        ("application/octet-stream".into(), config),
    );
    let fake = FakeRegistry::start(routes);
    let root = Root::new();
    let err = root.fails(&["pull", &format!("{}/test/difflie:1", fake.addr)]);
    assert!(
        err.contains(&fake_diff.to_string()),
        "names the expected diff_id: {err}"
    );
    assert_store_empty(&root);
}
