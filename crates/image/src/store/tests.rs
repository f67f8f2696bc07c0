//! Store tests on a temporary root: layout, names, removal rules, crash
//! leftovers. No network, no root needed.

use std::fs;
use std::io::Write;

use serde_json::json;

use super::*;
use crate::digest::Digest;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

fn d(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

/// Writes a layer (snapshot with one file) and returns its chain id.
fn add_layer(store: &Store, name: &str, parent: Option<&Digest>) -> (Digest, Digest) {
    let chain = d(&format!("chain {name} {parent:?}"));
    let _lock = store.lock_chain(&chain).expect("lock");
    let snap = store.temp_dir().expect("temp dir");
    fs::write(snap.path().join("fs").join(name), name).expect("write file");
    let (path, mut file) = store.temp_file().expect("temp file");
    file.write_all(name.as_bytes()).expect("write blob");
    let blob = Digest::of(name.as_bytes());
    store
        .commit_layer(LayerCommit {
            chain_id: chain.clone(),
            parent: parent.cloned(),
            diff_id: d(&format!("diff {name}")),
            size: 100,
            blob: Some(BlobCommit {
                file: path,
                digest: blob.clone(),
                size: name.len() as u64,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                source_repo: Some("127.0.0.1:5000/src".into()),
            }),
            snapshot: Some(snap),
        })
        .expect("commit layer");
    (chain, blob)
}

/// Adds an image with the given layers; returns its id.
fn add_image(store: &Store, name: Option<&str>, layers: &[&str]) -> Digest {
    let mut parent: Option<Digest> = None;
    let mut rows = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (chain, blob) = add_layer(store, l, parent.as_ref());
        diff_ids.push(d(&format!("diff {l}")).to_string());
        rows.push((
            chain.clone(),
            blob,
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
        ));
        parent = Some(chain);
    }
    let config = json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|l| json!({"created_by": format!("ADD {l}")})).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config).expect("config json");
    let id = store
        .put_blob(
            &config_bytes,
            "application/vnd.oci.image.config.v1+json",
            None,
        )
        .expect("config blob");
    let manifest = format!("manifest of {id}");
    let manifest_digest = store
        .put_blob(
            manifest.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
            None,
        )
        .expect("manifest");
    let tag = name.map(|n| query::normalise(n).expect("name").to_string());
    store
        .commit_image(&NewImage {
            id: id.clone(),
            manifest_digest: manifest_digest.clone(),
            created: Some("2024-01-02T03:04:05Z".into()),
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            layers: rows,
            tag,
            repo_digest: name.map(|n| {
                format!(
                    "{}@{manifest_digest}",
                    query::repo_of(&query::normalise(n).expect("name"))
                )
            }),
        })
        .expect("commit image");
    id
}

#[test]
fn open_creates_the_layout_and_a_versioned_schema() {
    let (dir, store) = store();
    for sub in ["blobs/sha256", "snapshots", "tmp", "locks", "berth.db"] {
        assert!(dir.path().join(sub).exists(), "{sub} missing after open");
    }
    let v: i64 = store
        .db()
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = store
        .db()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    drop(store);
    Store::open(dir.path()).expect("reopen an existing store");
}

#[test]
fn open_refuses_a_newer_schema() {
    let (dir, store) = store();
    store
        .db()
        .execute("UPDATE schema_version SET version = 999", [])
        .expect("bump");
    drop(store);
    let err = Store::open(dir.path()).expect_err("newer schema must be refused");
    assert!(
        err.to_string().contains("999"),
        "message should name the version: {err}"
    );
}

#[test]
fn stale_temp_areas_of_dead_processes_are_removed_at_open() {
    let (dir, store) = store();
    let stale = dir.path().join("tmp/999999-1");
    fs::create_dir_all(stale.join("snap-0/fs")).expect("stale dir");
    fs::write(dir.path().join("tmp/999999-1.lock"), "").expect("stale lock");
    let ours = store.temp_dir().expect("temp dir");
    let second = Store::open(dir.path()).expect("second open");
    assert!(
        !stale.exists(),
        "stale area of a dead process should be removed"
    );
    assert!(
        ours.path().exists(),
        "the area of a live store must survive another open"
    );
    drop(second);
}

#[test]
fn resolve_by_name_id_prefix_and_digest() {
    let (_dir, store) = store();
    let id = add_image(&store, Some("busybox"), &["a", "b"]);
    let by_name = store.resolve("busybox").expect("by short name");
    assert_eq!(by_name.id, id);
    assert_eq!(
        by_name.tags,
        vec!["docker.io/library/busybox:latest".to_string()]
    );
    assert_eq!(
        store
            .resolve("docker.io/library/busybox:latest")
            .expect("full name")
            .id,
        id
    );
    assert_eq!(store.resolve(&id.hex()[..12]).expect("id prefix").id, id);
    assert_eq!(store.resolve(&id.to_string()).expect("full id").id, id);
    let manifest = by_name.manifest_digest.to_string();
    assert_eq!(store.resolve(&manifest).expect("manifest digest").id, id);
    assert_eq!(
        store
            .resolve(&format!("busybox@{manifest}"))
            .expect("repo digest")
            .id,
        id
    );
    assert!(matches!(
        store.resolve("nginx"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(by_name.size, 200, "size is the sum of layer sizes");
}

#[test]
fn tag_adds_a_name_and_moves_an_existing_one() {
    let (_dir, store) = store();
    let a = add_image(&store, Some("a"), &["x"]);
    let b = add_image(&store, Some("b"), &["y"]);
    store.tag("a", "localhost:5000/team/a:v1").expect("tag");
    assert_eq!(
        store
            .resolve("localhost:5000/team/a:v1")
            .expect("new tag")
            .id,
        a
    );
    store.tag("b", "localhost:5000/team/a:v1").expect("retag");
    assert_eq!(
        store
            .resolve("localhost:5000/team/a:v1")
            .expect("moved tag")
            .id,
        b
    );
    assert!(store.tag("nope", "c").is_err());
}

#[test]
fn remove_by_name_untags_until_the_last_name() {
    let (dir, store) = store();
    let id = add_image(&store, Some("a"), &["l1", "l2"]);
    store.tag("a", "b:1").expect("tag");
    let removed = store.remove("a", false).expect("rmi a");
    assert_eq!(
        removed,
        vec![Removed::Untagged("docker.io/library/a:latest".into())]
    );
    assert!(
        store.resolve(&id.to_string()).is_ok(),
        "image stays while b:1 names it"
    );
    let removed = store.remove("b:1", false).expect("rmi b:1");
    assert!(
        removed.contains(&Removed::Deleted(id.clone())),
        "last name deletes the image: {removed:?}"
    );
    assert!(store.images().expect("images").is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots"))
            .expect("ls")
            .count(),
        0,
        "snapshots removed"
    );
    assert_eq!(
        fs::read_dir(dir.path().join("blobs/sha256"))
            .expect("ls")
            .count(),
        0,
        "blobs removed"
    );
}

#[test]
fn remove_by_id_refuses_several_names_unless_forced() {
    let (_dir, store) = store();
    let id = add_image(&store, Some("a"), &["l1"]);
    store.tag("a", "b").expect("tag");
    let err = store
        .remove(&id.hex()[..12], false)
        .expect_err("must refuse");
    assert!(
        err.to_string()
            .contains("referenced in multiple repositories"),
        "{err}"
    );
    let removed = store.remove(&id.hex()[..12], true).expect("forced");
    assert!(removed.contains(&Removed::Untagged("docker.io/library/a:latest".into())));
    assert!(removed.contains(&Removed::Untagged("docker.io/library/b:latest".into())));
    assert!(removed.contains(&Removed::Deleted(id)));
}

struct OneUser(Digest);

impl ImageUsers for OneUser {
    fn containers_using(&self, id: &Digest) -> Vec<String> {
        if *id == self.0 {
            vec!["web".into()]
        } else {
            Vec::new()
        }
    }
}

#[test]
fn remove_refuses_an_image_a_container_uses_unless_forced() {
    let (_dir, store) = store();
    let id = add_image(&store, Some("a"), &["l1"]);
    let err = store
        .remove_with("a", false, &OneUser(id.clone()))
        .expect_err("in use");
    assert!(
        err.to_string().contains("being used by container web"),
        "{err}"
    );
    store.remove_with("a", true, &OneUser(id)).expect("forced");
}

#[test]
fn shared_layers_survive_the_removal_of_one_image() {
    let (_dir, store) = store();
    let a = add_image(&store, Some("a"), &["base", "top-a"]);
    let b = add_image(&store, Some("b"), &["base", "top-b"]);
    store.remove("a", false).expect("rmi a");
    let dirs = store.snapshot_dirs(&b).expect("dirs of b");
    assert_eq!(dirs.len(), 2);
    for dir in &dirs {
        assert!(dir.is_dir(), "{} should still exist", dir.display());
    }
    assert!(
        dirs[0].join("top-b").exists(),
        "top layer comes first: {dirs:?}"
    );
    assert!(
        dirs[1].join("base").exists(),
        "base layer comes last: {dirs:?}"
    );
    assert!(store.image(&a).is_err());
}

#[test]
fn prune_removes_dangling_images_and_orphans() {
    let (dir, store) = store();
    let tagged = add_image(&store, Some("keep"), &["k"]);
    let dangling = add_image(&store, None, &["d"]);
    add_layer(&store, "orphan", None);
    fs::create_dir_all(
        dir.path()
            .join("snapshots")
            .join("ab".repeat(32))
            .join("fs"),
    )
    .expect("stray snapshot");
    let removed = store.prune(false, &NoUsers).expect("prune");
    assert!(removed.contains(&Removed::Deleted(dangling)), "{removed:?}");
    assert!(store.image(&tagged).is_ok());
    assert!(
        !dir.path().join("snapshots").join("ab".repeat(32)).exists(),
        "stray snapshot removed"
    );
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots"))
            .expect("ls")
            .count(),
        1
    );
    store.prune(true, &NoUsers).expect("prune -a");
    assert!(store.images().expect("images").is_empty());
}

#[test]
fn inspect_has_dockers_shape() {
    let (_dir, store) = store();
    let id = add_image(&store, Some("a:1"), &["l1", "l2"]);
    let v = store.inspect(&id).expect("inspect");
    assert_eq!(v["Id"], json!(id.to_string()));
    assert_eq!(v["RepoTags"], json!(["a:1"]));
    assert_eq!(v["Os"], json!("linux"));
    assert_eq!(v["Architecture"], json!("amd64"));
    assert_eq!(v["Config"]["Cmd"], json!(["sh"]));
    assert_eq!(v["RootFS"]["Type"], json!("layers"));
    assert_eq!(v["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["Size"], json!(200));
    let history = store.history(&id).expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, id.to_string());
    assert_eq!(history[0].created_by, "ADD l2");
    assert_eq!(history[1].id, "<missing>");
}

#[test]
fn two_stores_on_one_root_commit_the_same_layer() {
    let (dir, store) = store();
    let other = Store::open(dir.path()).expect("second store");
    std::thread::scope(|s| {
        s.spawn(|| add_image(&store, Some("x"), &["same"]));
        s.spawn(|| add_image(&other, Some("x"), &["same"]));
    });
    assert_eq!(store.images().expect("images").len(), 1);
    assert_eq!(
        fs::read_dir(dir.path().join("snapshots"))
            .expect("ls")
            .count(),
        1
    );
}

#[test]
fn a_killed_commit_leaves_no_visible_half_state() {
    // A snapshot renamed into place without its row (killed before the
    // commit): not a layer yet, and collected by prune.
    let (dir, store) = store();
    let chain = d("half");
    let snap = store.temp_dir().expect("temp");
    snap.persist(&store.snapshot_path(&chain)).expect("rename");
    assert!(store.has_snapshot(&chain));
    assert!(
        !store.has_layer(&chain).expect("query"),
        "a snapshot without a row is not a layer"
    );
    store.prune(false, &NoUsers).expect("prune");
    assert!(!dir.path().join("snapshots").join(chain.hex()).exists());
}
