//! save / load / import round trips.

use crate::harness::*;

fn pulled(reg: &crate::registry::TestRegistry, repo: &str) -> (Root, String, BuiltImage) {
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let name = format!("{}/test/{repo}:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    root.ok(&["pull", "-q", &name]);
    (root, name, img)
}

#[test]
fn save_and_load_round_trip_in_both_formats() {
    let Some(reg) = registry() else { return };
    let (root, name, img) = pulled(&reg, "archive");
    let single = build_image(
        &[(LayerTar::new().file("x", b"x").finish(), Codec::Zstd)],
        false,
        "amd64",
    );
    let second = format!("{}/test/archive2:1", reg.addr);
    push_image(&second, &single);
    root.ok(&["pull", "-q", &second]);
    for format in ["docker-archive", "oci-archive"] {
        let file = root.path().join(format!("out-{format}.tar"));
        root.ok(&[
            "save",
            "--format",
            format,
            "-o",
            file.to_str().expect("utf8"),
            &name,
            &second,
        ]);
        let other = Root::new();
        let out = other.ok(&["load", "-i", file.to_str().expect("utf8")]);
        assert!(
            out.contains(&format!("Loaded image: {name}"))
                && out.contains(&format!("Loaded image: {second}")),
            "{format}: {out}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&other.ok(&["inspect", &name])).expect("json");
        assert_eq!(
            v[0]["Id"],
            serde_json::json!(img.config_digest.to_string()),
            "{format}: same image id after load"
        );
        assert_eq!(
            other.entries("snapshots").len(),
            4,
            "{format}: all layers unpacked"
        );
        let top = other.path().join("snapshots");
        let any_su = other
            .entries("snapshots")
            .iter()
            .any(|s| top.join(s).join("fs/bin/su").exists());
        assert!(any_su, "{format}: layer content present");
    }
    let file = root.path().join("docker.tar");
    root.ok(&["save", "-o", file.to_str().expect("utf8"), &name]);
    let listing = std::process::Command::new("tar")
        .arg("tf")
        .arg(&file)
        .output()
        .expect("tar tf");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("manifest.json") && listing.contains("repositories"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{}.json", img.config_digest.hex())),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{}/layer.tar", img.diff_ids[0].hex())),
        "layers uncompressed, by diff id: {listing}"
    );
}

#[test]
fn load_reads_stdin_and_import_makes_a_one_layer_image() {
    let Some(reg) = registry() else { return };
    let (root, name, _) = pulled(&reg, "stdin");
    let file = root.path().join("a.tar");
    root.ok(&["save", "-o", file.to_str().expect("utf8"), &name]);
    let other = Root::new();
    let out = other
        .command(&["load", "-q"])
        .stdin(std::fs::File::open(&file).expect("open"))
        .output()
        .expect("load");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "load -q from stdin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(other.images().len(), 1);

    let tar = LayerTar::new()
        .dir("etc", 0o755)
        .file("etc/os-release", b"ID=test\n")
        .finish();
    let tgz = other.path().join("rootfs.tgz");
    std::fs::write(&tgz, compress(&tar, Codec::Gzip)).expect("write");
    let id = other.ok(&["import", tgz.to_str().expect("utf8"), "imported:1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let v: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", "imported:1"])).expect("json");
    assert_eq!(
        v[0]["RootFS"]["Layers"],
        serde_json::json!([image::digest::Digest::of(&tar).to_string()])
    );
    let history = other.ok(&["history", "imported:1"]);
    assert!(history.contains("Imported from"), "{history}");
}

#[test]
fn load_refuses_an_archive_whose_layer_does_not_match_the_config() {
    let root = Root::new();
    let layer = LayerTar::new().file("a", b"a").finish();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [image::digest::Digest::of(b"something else").to_string()]},
    });
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).expect("append");
    };
    add("c.json", &serde_json::to_vec(&config).expect("json"));
    add("l/layer.tar", &layer);
    add(
        "manifest.json",
        br#"[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["l/layer.tar"]}]"#,
    );
    let file = root.path().join("bad.tar");
    std::fs::write(&file, b.into_inner().expect("tar")).expect("write");
    let err = root.fails(&["load", "-i", file.to_str().expect("utf8")]);
    assert!(
        err.contains("l/layer.tar") && err.contains("digest"),
        "{err}"
    );
    assert!(root.images().is_empty());
    assert!(root.entries("snapshots").is_empty(), "nothing half-loaded");
}
