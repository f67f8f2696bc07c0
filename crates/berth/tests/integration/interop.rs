//! Interop with the tools people already have: skopeo copies what berth
//! pushed and berth pulls what skopeo pushed; podman loads `berth save`.

use std::process::Command;

use crate::harness::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_copies_what_berth_pushed_and_berth_pulls_what_skopeo_pushed() {
    if !have("skopeo") {
        return;
    }
    let Some(reg) = registry() else { return };
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let root = Root::new();
    // Into the store via a registry, then pushed by berth under a new name.
    let src = format!("{}/test/src:1", reg.addr);
    push_image(&src, &img);
    root.ok(&["pull", "-q", &src]);
    let pushed = format!("{}/test/by-berth:1", reg.addr);
    root.ok(&["tag", &src, &pushed]);
    let out = root.run(&["push", &pushed]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push: {stderr}");
    assert!(
        stderr.contains("Mounted from") || stderr.contains("Layer already exists"),
        "cross-repo mount tried: {stderr}"
    );
    let oci = root.path().join("skopeo-oci");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{pushed}"))
        .arg(format!("oci:{}", oci.display())));
    assert!(oci.join("index.json").is_file());

    // skopeo pushes back under another name; berth pulls it.
    let by_skopeo = format!("{}/test/by-skopeo:1", reg.addr);
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", oci.display()))
        .arg(format!("docker://{by_skopeo}")));
    let other = Root::new();
    other.ok(&["pull", "-q", &by_skopeo]);
    let v: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", &by_skopeo])).expect("json");
    assert_eq!(
        v[0]["Id"],
        serde_json::json!(img.config_digest.to_string()),
        "same config through skopeo"
    );

    // skopeo-made archives load in berth.
    let archive = root.path().join("skopeo-docker.tar");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{pushed}"))
        .arg(format!(
            "docker-archive:{}:made/by:skopeo",
            archive.display()
        )));
    let third = Root::new();
    let out = third.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    assert!(out.contains("made/by:skopeo"), "{out}");
    let oci_archive = root.path().join("skopeo-oci.tar");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{pushed}"))
        .arg(format!("oci-archive:{}:made/by:oci", oci_archive.display())));
    third.ok(&["load", "-i", oci_archive.to_str().expect("utf8")]);
    assert_eq!(
        third.ok(&["images", "-q"]).lines().count(),
        1,
        "same image id from both archives"
    );
}

#[test]
fn podman_loads_what_berth_saved() {
    if !have("podman") {
        return;
    }
    let Some(reg) = registry() else { return };
    let img = build_image(&rich_layers(Codec::Gzip), false, "amd64");
    let name = format!("{}/test/for-podman:1", reg.addr);
    push_image(&name, &img);
    let root = Root::new();
    root.ok(&["pull", "-q", &name]);
    let storage = tempfile::Builder::new()
        .prefix("berth-it-podman-")
        .tempdir()
        .expect("temp");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(storage.path().join("root"))
            .arg("--runroot")
            .arg(storage.path().join("run"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "vfs",
            ])
            .args(args);
        c
    };
    for format in ["docker-archive", "oci-archive"] {
        let file = root.path().join(format!("{format}.tar"));
        root.ok(&[
            "save",
            "--format",
            format,
            "-o",
            file.to_str().expect("utf8"),
            &name,
        ]);
        run(&mut podman(&["load", "-i", file.to_str().expect("utf8")]));
        let listed = run(&mut podman(&[
            "images",
            "--format",
            "{{.ID}}",
            "--no-trunc",
        ]));
        assert!(
            listed.contains(img.config_digest.hex()),
            "{format}: podman lists the image: {listed}"
        );
        run(&mut podman(&["rmi", "-a", "-f"]));
    }
}
