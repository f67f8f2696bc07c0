//! The listing and naming verbs: images, tag, rmi, inspect, history, prune.

use crate::harness::*;

#[test]
fn images_tag_rmi_follow_dockers_rules() {
    let Some(reg) = registry() else { return };
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let name = format!("{}/test/names:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    root.ok(&["pull", "-q", &name]);
    root.ok(&["tag", &name, "mine:v2"]);
    let table = root.ok(&["images"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("mine ") && l.contains(" v2 ")),
        "familiar names: {table}"
    );
    let ids = root.ok(&["images", "-q"]);
    assert_eq!(
        ids.trim(),
        &img.config_digest.hex()[..12],
        "-q prints each id once"
    );
    assert!(
        root.ok(&["images", "--digests"]).contains("sha256:"),
        "--digests shows the digest column"
    );
    for line in table.lines() {
        assert!(line.chars().count() <= 120, "fits a terminal: {line:?}");
    }

    let short = &img.config_digest.hex()[..12];
    let err = root.fails(&["rmi", short]);
    assert!(
        err.contains("must be forced"),
        "an id with two names needs -f: {err}"
    );
    let out = root.ok(&["rmi", "mine:v2"]);
    assert_eq!(
        out.trim(),
        "Untagged: mine:v2",
        "a name of several is only untagged"
    );
    let out = root.ok(&["image", "rm", &name]);
    assert!(
        out.contains(&format!("Deleted: {}", img.config_digest)),
        "{out}"
    );
    assert!(root.images().is_empty());
    assert!(
        root.entries("snapshots").is_empty(),
        "snapshots removed: {:?}",
        root.entries("snapshots")
    );
    assert!(
        root.entries("blobs/sha256").is_empty(),
        "blobs removed: {:?}",
        root.entries("blobs/sha256")
    );
    let err = root.fails(&["rmi", "nothing-here"]);
    assert!(
        err.starts_with("berth: ") && err.contains("no such image"),
        "{err}"
    );
}

#[test]
fn inspect_and_history_show_dockers_fields() {
    let Some(reg) = registry() else { return };
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let name = format!("{}/test/inspect:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    root.ok(&["pull", "-q", &name]);
    let v: serde_json::Value =
        serde_json::from_str(&root.ok(&["image", "inspect", &name])).expect("json");
    let v = &v[0];
    assert_eq!(v["Id"], serde_json::json!(img.config_digest.to_string()));
    assert_eq!(v["RepoTags"], serde_json::json!([name]));
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(v["RootFS"]["Type"], "layers");
    let layers: Vec<String> = img.diff_ids.iter().map(|d| d.to_string()).collect();
    assert_eq!(v["RootFS"]["Layers"], serde_json::json!(layers));
    let history = root.ok(&["history", &name]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "header + 3 steps: {history}");
    assert!(
        lines[1].starts_with(&img.config_digest.hex()[..12]) && lines[1].contains("layer 2"),
        "{history}"
    );
    assert!(
        lines[3].starts_with("<missing>") && lines[3].contains("layer 0"),
        "{history}"
    );
}

#[test]
fn prune_removes_dangling_images_only_unless_all() {
    let Some(reg) = registry() else { return };
    let one = build_image(
        &[(LayerTar::new().file("v", b"1").finish(), Codec::Gzip)],
        false,
        "amd64",
    );
    let two = build_image(
        &[(LayerTar::new().file("v", b"2").finish(), Codec::Gzip)],
        false,
        "amd64",
    );
    let name = format!("{}/test/prune:1", reg.addr);
    push_image(&name, &one);
    let root = Root::new();
    root.ok(&["pull", "-q", &name]);
    push_image(&name, &two);
    root.ok(&["pull", "-q", &name]);
    assert_eq!(root.images().len(), 2, "the old image is now dangling");
    let out = root.ok(&["image", "prune", "-f"]);
    assert!(
        out.contains(&format!("Deleted: {}", one.config_digest)),
        "{out}"
    );
    assert_eq!(root.images().len(), 1);
    root.ok(&["image", "prune", "-a", "-f"]);
    assert!(root.images().is_empty());
    assert!(root.entries("snapshots").is_empty());
}

#[test]
fn every_command_has_help_with_an_example_and_bad_flags_exit_125() {
    let root = Root::new();
    for cmd in [
        "pull", "push", "images", "rmi", "tag", "inspect", "history", "save", "load", "import",
        "login", "logout",
    ] {
        let out = root.ok(&[cmd, "--help"]);
        assert!(
            out.contains("Example"),
            "{cmd} --help has an example:\n{out}"
        );
    }
    let out = root.ok(&["image", "prune", "--help"]);
    assert!(out.contains("Example"));
    let out = root.run(&["pull", "--no-such-flag", "x"]);
    assert_eq!(out.status.code(), Some(125));
    let err = root.fails(&["pull", "Upper"]);
    assert!(
        err.starts_with("berth: ") && err.contains("lowercase"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}
